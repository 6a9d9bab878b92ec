"""``HardwareProfile``: what one board or device class offers, as plain typed data.

Profiles are TOML files (``hardware_profiles/<id>.toml``); ``tinynas.hardware.loader``
reads and validates them into this record. The budgets every other stage checks
(``sram_budget_bytes``, ``flash_budget_bytes``, ``latency_target_ms``) are derived
here, so the subtraction of what the runtime already takes happens in one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from tinynas.errors import ProfileError

#: A ceiling on ``[extra] threads`` that catches a typo (the biggest phone or server CPU sits far below).
MAX_RUNTIME_THREADS = 256

KINDS = ("mcu", "mobile", "gpu")


@dataclass(frozen=True)
class LatencyModel:
    """Per-op-type cycles per MAC and per element, per-operator and per-invoke overheads, and the
    part's kernel fast path and flash (MicroNets' linear model with the terms that explain
    published MLPerf Tiny latencies; ``tinynas.cost.latency`` prices a graph with it).

    ``cycles_per_mac`` keys are TFLite builtin op names (``CONV_2D``,
    ``DEPTHWISE_CONV_2D``, ``FULLY_CONNECTED``), the variant ``CONV_2D_1X1``
    (pointwise convolution, which kernel libraries run without im2col; absent,
    ``CONV_2D`` prices it) and ``default`` for any other op with MACs.
    ``cycles_per_element`` prices each op's output elements: ops without MACs
    (ADD, pools, MEAN, SOFTMAX, RESHAPE; a pool's or MEAN's coefficient covers
    the inputs it reads per output) through their entry or ``default``, and the
    outputs of conv/depthwise/FC (requantization) only through an explicit entry.

    The part's properties, not fitted by calibration: a MAC whose channel span
    (input channels of a 1x1 conv, kernel column ``kh*kw*in_c`` of a k x k conv,
    channels of a depthwise conv, FC input length) is not a multiple of
    ``fast_path_channels`` runs the kernel's scalar leftover loop and costs
    ``slow_path_factor`` times a fast-path MAC (1 and 1.0: no distinction);
    every weight byte streamed from flash per inference costs
    ``cycles_per_weight_byte``, or when that is None ``flash_wait_states`` times
    the per-wait-state cost fitted in ``tinynas.cost.latency``. ``source`` names
    where the coefficients come from.
    """

    cycles_per_mac: dict[str, float]
    cycles_per_element: dict[str, float]
    op_overhead_cycles: float
    invoke_overhead_cycles: float = 0.0
    source: str = ""
    fast_path_channels: int = 1
    slow_path_factor: float = 1.0
    flash_wait_states: int = 0
    cycles_per_weight_byte: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LatencyModel":
        """The inverse of ``to_json`` (no range checks: TOML files go through the loader)."""
        try:
            per_byte = data.get("cycles_per_weight_byte")
            return cls(
                cycles_per_mac={str(k): float(v) for k, v in data["cycles_per_mac"].items()},
                cycles_per_element={str(k): float(v) for k, v in data["cycles_per_element"].items()},
                op_overhead_cycles=float(data["op_overhead_cycles"]),
                invoke_overhead_cycles=float(data.get("invoke_overhead_cycles", 0.0)),
                source=str(data.get("source", "")),
                fast_path_channels=int(data.get("fast_path_channels", 1)),
                slow_path_factor=float(data.get("slow_path_factor", 1.0)),
                flash_wait_states=int(data.get("flash_wait_states", 0)),
                cycles_per_weight_byte=None if per_byte is None else float(per_byte),
            )
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise ProfileError(f"a latency model needs cycles_per_mac, cycles_per_element and "
                               f"op_overhead_cycles as numbers: {exc!r} in {str(dict(data))[:160]}") from None


@dataclass(frozen=True)
class SerialSettings:
    baud: int = 115200
    usb_ids: tuple[tuple[int, int], ...] = ()  # (vid, pid) pairs, for `--port auto`
    reset: str = "none"  # "none" | "dtr" | "rts": how to reset the board before measuring
    boot_wait_s: float = 2.0


@dataclass(frozen=True)
class Ecosystem:
    """Board ids in each ecosystem; empty where the ecosystem does not support the board."""

    default_template: str
    platformio_board: str = ""
    platformio_platform: str = ""
    arduino_fqbn: str = ""
    zephyr_board: str = ""
    espidf_target: str = ""
    pico_board: str = ""
    cmake_cpu: str = ""  # -mcpu for plain CMake builds, e.g. "cortex-m4"


@dataclass(frozen=True)
class HardwareProfile:
    id: str
    name: str
    kind: str  # one of KINDS
    core: str  # e.g. "cortex-m4f", "cortex-m7", "xtensa-lx7", "cortex-a72"
    clock_hz: int
    sram_bytes: int
    flash_bytes: int
    reserved_sram_bytes: int  # taken by firmware, stacks, heap, serial buffers
    runtime_flash_bytes: int  # TFLM (or LiteRT) code plus the application
    kernel_library: str  # "reference" | "cmsis-nn" | "esp-nn" | "xnnpack" | "gpu-delegate" ...
    runtime: str  # "tflm" | "litert"
    latency: LatencyModel
    serial: SerialSettings
    ecosystem: Ecosystem
    latency_target_ms: float | None = None  # default latency budget for searches; None: no limit
    fpu: bool = False
    simd: str = ""  # "dsp", "helium", "pie", "neon", ...
    notes: str = ""
    source_path: str = ""  # the file it was read from (for messages)
    extra: dict[str, Any] = field(default_factory=dict)
    max_macs: int | None = None  # a MAC bound (NanoNAS-style); None: no limit
    # The part's memory map for bare-metal linker scripts (None: not stated; see ``memory_map``).
    flash_origin: int | None = None
    flash_region_bytes: int | None = None  # flash the application may use (after a boot loader; default flash_bytes)
    ram_origin: int | None = None
    ram_region_bytes: int | None = None  # the one RAM block data and the arena go in (default sram_bytes)
    # SRAM a run sets aside from the arena budget for the input front end it generates (the buffers of
    # image_frontend.c or audio_frontend.c, and the arena's margin beside them); 0 in a profile file
    # (tinynas.pipeline.front_end_budget)
    front_end_reserve_bytes: int = 0
    # the profile (id or path) whose values the file kept where it set none; "" when it has none
    base: str = ""

    def memory_map(self) -> dict[str, int]:
        """Flash and RAM origin and length for a linker script.

        Without ``[memory]`` origins the STM32 map (flash 0x08000000, RAM 0x20000000) is assumed,
        the most common one among Cortex-M parts; a profile for another family states its own.
        """
        return {"flash_origin": 0x08000000 if self.flash_origin is None else self.flash_origin,
                "flash_length": self.flash_region_bytes or self.flash_bytes,
                "ram_origin": 0x20000000 if self.ram_origin is None else self.ram_origin,
                "ram_length": self.ram_region_bytes or self.sram_bytes}

    @property
    def runtime_threads(self) -> int:
        """CPU threads of the profile's runtime (``[extra] threads``), for deploy validation,
        the runners, benchmark_model and ``measure --on``; one when the profile does not say,
        since a machine tinynas knows nothing about is not assumed to give it every core.
        """
        value = self.extra.get("threads", 1)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RUNTIME_THREADS:
            raise ProfileError(f"{self.source_path or self.id}: extra.threads must be a whole number of runtime "
                               f"threads from 1 to {MAX_RUNTIME_THREADS}, got {value!r}; fix the profile's [extra] table")
        return value

    @property
    def sram_budget_bytes(self) -> int:
        """SRAM left for the tensor arena once the firmware's share (and a run's front end) is taken."""
        return self.sram_bytes - self.reserved_sram_bytes - self.front_end_reserve_bytes

    @property
    def flash_budget_bytes(self) -> int:
        """Flash left for the model once the runtime's code is taken."""
        return self.flash_bytes - self.runtime_flash_bytes

    def with_budgets(
        self,
        *,
        arena_budget_bytes: int | None = None,
        flash_budget_bytes: int | None = None,
        latency_target_ms: float | None = None,
        max_macs: int | None = None,
    ) -> "HardwareProfile":
        """This profile with the budgets a user stated on the command line in place of its own.

        The arena and flash budgets replace what is left once the firmware's share is taken
        (the user knows their firmware); they may not exceed the part's SRAM or flash. None
        keeps the profile's budget. Raises ProfileError naming the option and the limit.
        """
        changes: dict[str, Any] = {}
        for option, value, total, unit in (("--arena-budget", arena_budget_bytes, self.sram_bytes, "SRAM"),
                                           ("--flash-budget", flash_budget_bytes, self.flash_bytes, "flash")):
            if value is None:
                continue
            if not 0 < int(value) <= total:
                raise ProfileError(f"{option} {value} B is not within {self.id}'s {total} B of {unit}; "
                                   f"give a budget between 1 and {total} bytes")
        if arena_budget_bytes is not None:
            changes["reserved_sram_bytes"] = self.sram_bytes - int(arena_budget_bytes)
        if flash_budget_bytes is not None:
            changes["runtime_flash_bytes"] = self.flash_bytes - int(flash_budget_bytes)
        if latency_target_ms is not None:
            if not 0 < float(latency_target_ms) < float("inf"):
                raise ProfileError(f"--latency-ms must be a finite number of milliseconds above 0, "
                                   f"got {latency_target_ms}")
            changes["latency_target_ms"] = float(latency_target_ms)
        if max_macs is not None:
            if int(max_macs) < 1:
                raise ProfileError(f"--max-macs must be at least 1, got {max_macs}")
            changes["max_macs"] = int(max_macs)
        return replace(self, **changes) if changes else self

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["serial"]["usb_ids"] = [f"{vid:04x}:{pid:04x}" for vid, pid in self.serial.usb_ids]
        data["sram_budget_bytes"] = self.sram_budget_bytes
        data["flash_budget_bytes"] = self.flash_budget_bytes
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "HardwareProfile":
        """The inverse of ``to_json`` (for run directories that store the resolved profile)."""
        try:
            values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
            serial = dict(data["serial"])
            serial["usb_ids"] = tuple(
                (int(a, 16), int(b, 16)) for a, b in (str(u).split(":") for u in serial.get("usb_ids", ()))
            )
            values["serial"] = SerialSettings(**serial)
            values["ecosystem"] = Ecosystem(**data["ecosystem"])
            values["latency"] = LatencyModel.from_json(data["latency"])
            values["extra"] = dict(data.get("extra", {}))
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(
                f"not a hardware profile as written by HardwareProfile.to_json(): {exc!r}"
            ) from None
