"""The latency model shared by all MCU profiles, fitted to published MLPerf Tiny latencies.

Every built-in Cortex-M and ESP32 profile's ``[latency]`` numbers come from one
model with few shared parameters, so that a board is predicted from what other
boards show (``scripts/bench_profile_latency.py`` prints the fit, the
leave-one-board-out errors and the TOML it writes). In cycles:

    cycles = S[core] x R[runtime] x ( pw x MACs(1x1 conv) + 2 pw x MACs(depthwise)
                                      + conv x K x MACs(k x k conv) + fc x MACs(FC) )
             + C[core] x R[runtime] x ( 10 x outputs of MAC ops + element costs + 2500 x ops + 8000 )
             + weight bytes x (wait_state_cycles x flash wait states, or the part's XIP rate)

with MACs off the kernel's SIMD fast path counted ``slow_path_factor`` times
(``cost/latency.py``); K applies only to kernel libraries that run a k x k
convolution through im2col (CMSIS-NN's DSP and C kernels). Fitted: pw, conv,
fc, K, wait_state_cycles, the per-core scales S (Cortex-M33 = 1) and the
runtime factors R (TFLM + CMSIS-NN = 1). Fixed, because these figures cannot
separate them (stated where each is defined): depthwise = 2 x pw, the per-output,
per-element, per-op and per-invoke costs (scaled by the core's scalar speed C,
from CoreMark/MHz, not by S: they are scalar code), and the slow-path factor.

S and R have log-normal priors (``CORE_PRIORS``, ``RUNTIMES``) set from facts
outside these figures, so that a board whose core or runtime no other board
has is still predicted when it is held out (and its error says how good the prior is).
Each prediction is priced by ``cost.latency`` through the ``LatencyModel`` the
fit builds for that board (``board_latency_model``), the same path a profile takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from tinynas.cost.counts import POINTWISE
from tinynas.cost.latency import coefficient, graph_features, predict_cycles, slots
from tinynas.errors import CostError
from tinynas.hardware.profile import LatencyModel

# Published cycles per MAC = latency x clock / MACs, int8, from MLPerf Tiny inference results
# (MLCommons, v1.x closed division, "latency x clock / MACs" as in MicroNets, Banbury et al. 2021) and
# from vendor person-detection figures (7.16 M MACs: TFLM's person_detect, MobileNetV1-0.25 96x96x1).
MLPERF_SOURCE = "MLPerf Tiny inference results (MLCommons), cycles/MAC = latency x clock / MACs"
PERSON_DETECTION_SOURCE = "person detection (TFLM person_detect, 7.16 M MACs), vendor-published latency"
MLPERF_FILES = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
                "ad": "ad01_int8.tflite"}
MLPERF_MACS = {"kws": 2_660_000, "vww": 7_490_000, "ic": 12_500_000, "ad": 260_000}
PERSON_DETECTION_MACS = 7_160_000

# int8 MAC lanes of one SIMD multiply-accumulate instruction, relative to the Cortex-M DSP extension's
# SMLAD (2 x 16-bit): no SIMD MAC (Armv6-M, LX6) 1/2, 128-bit vectors (Helium MVE, ESP32-S3 PIE) 4x.
# CoreMark/MHz from Arm's processor pages (M0+ 2.46, M4 3.40, M7 5.01, M33 4.02, M85 6.28); Xtensa
# cores taken as equal to the M33 (no comparable vendor figure).
_COREMARK = {"cortex-m0plus": 2.46, "cortex-m4": 3.40, "cortex-m7": 5.01, "cortex-m33": 4.02, "cortex-m85": 6.28,
             "xtensa-lx6": 4.02, "xtensa-lx7": 4.02}
_SIMD_WIDTH = {"cortex-m0plus": 0.5, "cortex-m4": 1.0, "cortex-m7": 1.0, "cortex-m33": 1.0, "cortex-m85": 4.0,
               "xtensa-lx6": 0.5, "xtensa-lx7": 4.0}
# Per-cycle cost of a core's scalar code relative to the Cortex-M33 (CoreMark/MHz of the M33 / the core's): it
# scales what is not MAC loops (per-op and per-invoke overhead, element-wise ops, requantization), not fitted.
SCALAR_COST = {core: _COREMARK["cortex-m33"] / _COREMARK[core] for core in _COREMARK}
# Prior per-cycle cost of a core's MAC loops relative to the Cortex-M33: scalar cost / SIMD width.
CORE_PRIORS = {core: SCALAR_COST[core] / _SIMD_WIDTH[core] for core in _COREMARK}
REFERENCE_CORE = "cortex-m33"
CORE_PRIOR_SIGMA = 5.0  # log-normal and weak: it decides what no figure decides (a held-out core)
DSP_CORES = frozenset({"cortex-m4", "cortex-m7", "cortex-m33"})

# Fixed terms, in Cortex-M33 + TFLM/CMSIS-NN cycles (scaled by the core's SCALAR_COST x R).
DEPTHWISE_PER_POINTWISE = 2.0  # depthwise costs more per MAC than 1x1 (MicroNets); the ratio is assumed
CYCLES_PER_OUTPUT = 10.0  # requantize + store one output of a conv/FC (CMSIS-NN arm_nn_requantize: ~10 instructions)
OP_OVERHEAD_CYCLES = 2500.0  # "thousands of cycles" per operator for tiny models (MicroNets); assumed 2.5k
INVOKE_OVERHEAD_CYCLES = 8000.0  # MicroInterpreter::Invoke() entry/exit; assumed
SLOW_PATH_FACTOR = 2.0  # a MAC in CMSIS-NN's scalar leftover loop vs one in its SIMD loop; assumed from the code
ELEMENT_CYCLES = {"default": 6.4, "ADD": 6.4, "MAX_POOL_2D": 9.6, "AVERAGE_POOL_2D": 11.2, "MEAN": 48.0,
                  "SOFTMAX": 64.0, "RESHAPE": 0.8}  # per output element; estimates, too small here to fit


@dataclass(frozen=True)
class Runtime:
    """An inference runtime and its kernel library: its prior factor and whether k x k convs go
    through im2col (the K term)."""

    id: str
    label: str
    kernel_library: str
    im2col: bool
    prior: float = 1.0
    prior_sigma: float = 5.0  # log-normal, as weak as CORE_PRIOR_SIGMA
    note: str = ""


RUNTIMES = {r.id: r for r in (
    Runtime("tflm+cmsis-nn", "TFLM + CMSIS-NN", "cmsis-nn", True, note="the reference runtime (factor 1)"),
    Runtime("tflm+cmsis-nn-mve", "TFLM + CMSIS-NN (Helium)", "cmsis-nn-mve", False,
            note="CMSIS-NN's MVE kernels are other code than its DSP ones; prior 1"),
    Runtime("microtvm+cmsis-nn", "microTVM + CMSIS-NN", "cmsis-nn", True,
            note="the same CMSIS-NN kernels under another runtime; prior 1"),
    Runtime("x-cube-ai", "STM32Cube.AI", "x-cube-ai", False, note="ST's code generator; prior 1"),
    Runtime("bosch", "Bosch AI engine", "bosch", False, note="vendor engine; prior 1"),
    Runtime("esp-nn", "TFLM + ESP-NN", "esp-nn", False, note="Espressif's kernels; prior 1"),
    Runtime("tflm-reference", "TFLM reference kernels", "reference", False, prior_sigma=1e3,
            note="no prior: the only figure of plain reference kernels sets it"),
)}
REFERENCE_RUNTIME = "tflm+cmsis-nn"


@dataclass(frozen=True)
class Board:
    """A board with published figures: its part, core, clock and flash (wait states at that clock,
    or a streaming rate for parts that execute from external QSPI flash)."""

    id: str
    part: str
    core: str
    clock_hz: int
    flash_wait_states: int = 0
    cycles_per_weight_byte: float | None = None  # XIP parts: QSPI streaming rate instead of wait states
    flash_note: str = ""


BOARDS = {b.id: b for b in (
    Board("ek-ra6m4", "Renesas RA6M4", "cortex-m33", 200_000_000, 3,
          flash_note="RA6M4 user's manual, FLWT: 3 wait cycles above 150 MHz"),
    Board("ek-ra8d1", "Renesas RA8D1", "cortex-m85", 480_000_000, 5, flash_note="assumed 5 (not checked)"),
    Board("nrf5340dk", "Nordic nRF5340 (app core)", "cortex-m33", 128_000_000, 1,
          flash_note="assumed 1 at 128 MHz (flash behind a cache; not checked)"),
    Board("b-u585i-iot02a", "ST STM32U585", "cortex-m33", 160_000_000, 4,
          flash_note="RM0456 flash latency table: 4 WS at 160 MHz, range 1"),
    Board("nucleo-h7a3zi-q", "ST STM32H7A3", "cortex-m7", 280_000_000, 6,
          flash_note="assumed 6 at 280 MHz (RM0455; not checked)"),
    Board("nucleo-g0b1re", "ST STM32G0B1RE", "cortex-m0plus", 64_000_000, 2,
          flash_note="RM0444: 2 WS at 64 MHz, range 1"),
    Board("nucleo-f413zh", "ST STM32F413ZH", "cortex-m4", 100_000_000, 3,
          flash_note="RM0430: 3 WS at 100 MHz, 2.7-3.6 V"),
    Board("esp32s3", "Espressif ESP32-S3", "xtensa-lx7", 240_000_000, cycles_per_weight_byte=6.0,
          flash_note="XIP: quad SPI at 80 MHz, 2 flash clocks per byte = 6 CPU cycles at 240 MHz"),
    Board("esp32", "Espressif ESP32", "xtensa-lx6", 240_000_000, cycles_per_weight_byte=6.0,
          flash_note="XIP: quad SPI at 80 MHz, 2 flash clocks per byte = 6 CPU cycles at 240 MHz"),
    Board("rp2040", "Raspberry Pi RP2040", "cortex-m0plus", 133_000_000, cycles_per_weight_byte=4.0,
          flash_note="XIP: quad SPI at clk_sys/2, 2 flash clocks per byte = 4 CPU cycles"),
)}


@dataclass(frozen=True)
class PublishedFigure:
    """One published latency, as cycles per MAC of ``model`` (an MLPerf Tiny model; person detection
    is compared per MAC on the VWW model, the same MobileNetV1-0.25 96x96 family)."""

    board: str
    runtime: str
    model: str
    cycles_per_mac: float
    macs: int
    source: str

    @property
    def published_ms(self) -> float:
        return self.cycles_per_mac * self.macs / BOARDS[self.board].clock_hz * 1000.0


def _mlperf(board: str, runtime: str, kws: float, vww: float, ic: float, ad: float) -> list[PublishedFigure]:
    return [PublishedFigure(board, runtime, m, v, MLPERF_MACS[m], MLPERF_SOURCE)
            for m, v in (("kws", kws), ("vww", vww), ("ic", ic), ("ad", ad))]


def _person(board: str, runtime: str, cpm: float, note: str) -> PublishedFigure:
    return PublishedFigure(board, runtime, "vww", cpm, PERSON_DETECTION_MACS, f"{PERSON_DETECTION_SOURCE}: {note}")


FIGURES: tuple[PublishedFigure, ...] = (
    *_mlperf("ek-ra6m4", "tflm+cmsis-nn", 3.8, 4.3, 3.9, 3.5),
    *_mlperf("ek-ra8d1", "tflm+cmsis-nn-mve", 0.63, 0.86, 0.33, 0.96),
    *_mlperf("nrf5340dk", "microtvm+cmsis-nn", 3.7, 4.0, 3.2, 3.0),
    *_mlperf("b-u585i-iot02a", "x-cube-ai", 2.7, 2.9, 1.8, 2.9),
    *_mlperf("nucleo-h7a3zi-q", "x-cube-ai", 1.8, 1.9, 1.2, 1.9),
    *_mlperf("nucleo-g0b1re", "bosch", 11.4, 12.1, 7.8, 9.9),
    _person("nucleo-f413zh", "tflm+cmsis-nn", 5.4, "STM32F413ZH, TFLM with CMSIS-NN"),
    _person("nucleo-f413zh", "tflm-reference", 180.0, "STM32F413ZH, TFLM reference kernels (about 180)"),
    _person("esp32s3", "esp-nn", 1.7, "ESP32-S3 with ESP-NN, 1.6 to 1.8"),
    _person("esp32", "esp-nn", 12.7, "ESP32 (LX6) with ESP-NN"),
    _person("rp2040", "tflm+cmsis-nn", 14.0, "RP2040, one core, pico-tflmicro (CMSIS-NN kernels), about 14"),
)

FITTED_TERMS = ("pw", "conv", "fc", "im2col_factor", "wait_state_cycles")
_START = {"pw": 3.5, "conv": 2.5, "fc": 3.0, "im2col_factor": 1.5, "wait_state_cycles": 0.1}
_TERM_SIGMA = 5.0  # a ridge that only keeps the least-squares problem well posed


def core_class(core: str) -> str:
    """The core a profile's ``core`` names, without FPU suffixes: ``cortex-m4f`` -> ``cortex-m4``."""
    name = core.lower()
    if name.startswith("cortex-m") and name.endswith("f") and name[:-1] in _COREMARK:
        return name[:-1]
    return name


def profile_runtime(kernel_library: str) -> str:
    """The fit's runtime for a profile: TFLM with the profile's ``kernel_library``."""
    runtimes = {"cmsis-nn": "tflm+cmsis-nn", "esp-nn": "esp-nn", "reference": "tflm-reference"}
    if kernel_library not in runtimes:
        raise CostError(f"the shared latency fit has no runtime for kernel library {kernel_library!r}; "
                        f"known: {', '.join(runtimes)}")
    return runtimes[kernel_library]


def fast_path(core: str, kernel_library: str) -> tuple[int, float]:
    """(fast_path_channels, slow_path_factor) of a kernel library on a core: CMSIS-NN's DSP kernels
    step 4 channels (leftovers in a scalar loop), ESP-NN's ESP32-S3 kernels 8; MVE's tail predication
    and cores without SIMD have no separate fast path."""
    core = core_class(core)
    if kernel_library == "cmsis-nn" and core in DSP_CORES:
        return 4, SLOW_PATH_FACTOR
    if kernel_library == "esp-nn" and core == "xtensa-lx7":
        return 8, SLOW_PATH_FACTOR
    return 1, 1.0


@dataclass(frozen=True)
class SharedFit:
    """Fitted shared terms, per-core scales and runtime factors (all multiplicative, M33/TFLM = 1)."""

    terms: dict[str, float]
    core_scale: dict[str, float]
    runtime_factor: dict[str, float]
    figures: int
    excluded_board: str | None = None

    def scale(self, core: str, runtime: str) -> float:
        """S[core] x R[runtime]: the factor on MAC loops (a core or runtime not fitted takes its prior)."""
        return self._core(core) * self.factor(runtime)

    def scalar_scale(self, core: str, runtime: str) -> float:
        """C[core] x R[runtime]: the factor on overheads and element-wise work."""
        self._core(core)
        return SCALAR_COST[core_class(core)] * self.factor(runtime)

    def factor(self, runtime: str) -> float:
        if runtime not in RUNTIMES:
            raise CostError(f"no latency factor for runtime {runtime!r}: known {', '.join(RUNTIMES)}")
        return self.runtime_factor.get(runtime, RUNTIMES[runtime].prior)

    def _core(self, core: str) -> float:
        core = core_class(core)
        s = self.core_scale.get(core, CORE_PRIORS.get(core))
        if s is None:
            raise CostError(f"no latency scale for core {core!r}: known cores {', '.join(sorted(CORE_PRIORS))}")
        return s


def board_latency_model(fit: SharedFit, *, core: str, runtime: str, flash_wait_states: int = 0,
                        cycles_per_weight_byte: float | None = None, source: str = "") -> LatencyModel:
    """The ``LatencyModel`` the shared fit gives a core + runtime + flash. ``cycles_per_weight_byte``
    None prices weight bytes at ``flash_wait_states`` x the fitted per-wait-state cost."""
    rt = RUNTIMES[runtime]
    scale, scalar = fit.scale(core, runtime), fit.scalar_scale(core, runtime)
    t = fit.terms
    conv = t["conv"] * (t["im2col_factor"] if rt.im2col else 1.0)
    cpm = {"CONV_2D": scale * conv, POINTWISE: scale * t["pw"],
           "DEPTHWISE_CONV_2D": scale * DEPTHWISE_PER_POINTWISE * t["pw"],
           "FULLY_CONNECTED": scale * t["fc"], "default": scale * conv}
    cpe = {k: scalar * v for k, v in ELEMENT_CYCLES.items()}
    cpe.update({k: scalar * CYCLES_PER_OUTPUT for k in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")})
    channels, factor = fast_path(core, rt.kernel_library)
    per_byte = cycles_per_weight_byte if cycles_per_weight_byte is not None \
        else flash_wait_states * t["wait_state_cycles"]
    return LatencyModel(cycles_per_mac=cpm, cycles_per_element=cpe, op_overhead_cycles=scalar * OP_OVERHEAD_CYCLES,
                        invoke_overhead_cycles=scalar * INVOKE_OVERHEAD_CYCLES, source=source,
                        fast_path_channels=channels, slow_path_factor=factor, flash_wait_states=flash_wait_states,
                        cycles_per_weight_byte=per_byte)


def figure_latency_model(fit: SharedFit, figure: PublishedFigure) -> LatencyModel:
    board = BOARDS[figure.board]
    return board_latency_model(fit, core=board.core, runtime=figure.runtime, flash_wait_states=board.flash_wait_states,
                               cycles_per_weight_byte=board.cycles_per_weight_byte,
                               source=f"shared fit: {board.part}, {RUNTIMES[figure.runtime].label}")


# -- the fit ------------------------------------------------------------------------------------
@dataclass
class _Design:
    """Per figure, the graph's work split by term (priced by cost.latency), so a fit step is arithmetic."""

    units: np.ndarray  # (figures, 5): pw-equivalent MACs, k x k conv MACs, FC MACs, M33 fixed cycles, weight bytes
    im2col: np.ndarray  # (figures,) bool
    per_byte: np.ndarray  # (figures,) XIP cycles per byte, or nan (wait states)
    wait_states: np.ndarray
    target: np.ndarray  # published cycles of our graph: cycles/MAC x the graph's MACs
    core: list[str]
    runtime: list[str]


def _unit_model(core: str, runtime: str) -> LatencyModel:
    """A model with 1 per MAC for every op and the fixed costs unscaled: priced by cost.latency, it splits a
    graph's work into the fit's terms (slow-path MACs counted as the core + runtime's kernels count them)."""
    channels, factor = fast_path(core, RUNTIMES[runtime].kernel_library)
    cpe = dict(ELEMENT_CYCLES)
    cpe.update({k: CYCLES_PER_OUTPUT for k in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")})
    return LatencyModel(cycles_per_mac={"default": 1.0}, cycles_per_element=cpe, op_overhead_cycles=OP_OVERHEAD_CYCLES,
                        invoke_overhead_cycles=INVOKE_OVERHEAD_CYCLES, fast_path_channels=channels,
                        slow_path_factor=factor, cycles_per_weight_byte=1.0)


def _design(figures: Sequence[PublishedFigure], features: Mapping[str, Mapping[str, float]]) -> _Design:
    rows, im2col, per_byte, ws, target, cores, runtimes = [], [], [], [], [], [], []
    for fig in figures:
        board, feats = BOARDS[fig.board], features[fig.model]
        probe = _unit_model(board.core, fig.runtime)
        values, weight_bytes = slots(feats, probe)
        macs = {k[5:]: v for k, v in values.items() if k.startswith("macs:")}
        pw = macs.pop(POINTWISE, 0.0) + DEPTHWISE_PER_POINTWISE * macs.pop("DEPTHWISE_CONV_2D", 0.0)
        fc = macs.pop("FULLY_CONNECTED", 0.0)
        conv = sum(macs.values())  # k x k conv and any other MAC op (priced like it)
        fixed = sum(v * coefficient(probe, k) for k, v in values.items() if not k.startswith("macs:"))
        rows.append([pw, conv, fc, fixed, weight_bytes])
        im2col.append(RUNTIMES[fig.runtime].im2col)
        per_byte.append(np.nan if board.cycles_per_weight_byte is None else board.cycles_per_weight_byte)
        ws.append(board.flash_wait_states)
        target.append(fig.cycles_per_mac * sum(v for k, v in feats.items() if k.startswith("macs:")))
        cores.append(core_class(board.core))
        runtimes.append(fig.runtime)
    return _Design(np.array(rows, dtype=np.float64), np.array(im2col), np.array(per_byte), np.array(ws, dtype=float),
                   np.array(target), cores, runtimes)


def _predict(d: _Design, terms: Mapping[str, float], core_scale: Mapping[str, float],
             runtime_factor: Mapping[str, float]) -> np.ndarray:
    s = np.array([core_scale.get(c, CORE_PRIORS[c]) for c in d.core])
    c = np.array([SCALAR_COST[x] for x in d.core])
    r = np.array([runtime_factor.get(x, RUNTIMES[x].prior) for x in d.runtime])
    conv = terms["conv"] * np.where(d.im2col, terms["im2col_factor"], 1.0)
    macs = d.units[:, 0] * terms["pw"] + d.units[:, 1] * conv + d.units[:, 2] * terms["fc"]
    per_byte = np.where(np.isnan(d.per_byte), d.wait_states * terms["wait_state_cycles"], d.per_byte)
    return s * r * macs + c * r * d.units[:, 3] + d.units[:, 4] * per_byte


def fit_shared(figures: Sequence[PublishedFigure], features: Mapping[str, Mapping[str, float]], *,
               excluded_board: str | None = None) -> SharedFit:
    """Least squares on log(predicted / published) over ``figures`` (log-normal priors on core scales
    and runtime factors, a weak ridge on the terms). ``features`` maps model name -> graph_features."""
    from scipy.optimize import least_squares

    d = _design(figures, features)
    cores = sorted({c for c in d.core if c != REFERENCE_CORE})
    runtimes = sorted({r for r in d.runtime if r != REFERENCE_RUNTIME})
    names = [*FITTED_TERMS, *(f"S:{c}" for c in cores), *(f"R:{r}" for r in runtimes)]
    prior = np.array([math.log(_START[n]) if n in _START else
                      math.log(CORE_PRIORS[n[2:]]) if n.startswith("S:") else math.log(RUNTIMES[n[2:]].prior)
                      for n in names])
    sigma = np.array([_TERM_SIGMA if n in _START else CORE_PRIOR_SIGMA if n.startswith("S:")
                      else RUNTIMES[n[2:]].prior_sigma for n in names])

    def unpack(x: np.ndarray) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        v = {n: float(e) for n, e in zip(names, np.exp(x))}
        return ({n: v[n] for n in FITTED_TERMS}, {c: v[f"S:{c}"] for c in cores},
                {r: v[f"R:{r}"] for r in runtimes})

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = _predict(d, *unpack(x))
        return np.concatenate([np.log(pred / d.target), (x - prior) / sigma])

    sol = least_squares(residuals, prior.copy(), method="lm", xtol=1e-12, ftol=1e-12)
    terms, core_scale, runtime_factor = unpack(sol.x)
    return SharedFit(terms=terms, core_scale={REFERENCE_CORE: 1.0, **core_scale},
                     runtime_factor={REFERENCE_RUNTIME: 1.0, **runtime_factor}, figures=len(figures),
                     excluded_board=excluded_board)


def mlperf_features(folder: str | Path) -> dict[str, dict[str, float]]:
    """``graph_features`` of the four MLPerf Tiny reference models in ``folder`` (``benchmarks/mlperf_tiny``)."""
    from tinynas.space.tflite_reader import read_tflite

    return {name: graph_features(read_tflite(Path(folder) / file)) for name, file in MLPERF_FILES.items()}


def predicted_cycles_per_mac(fit: SharedFit, figure: PublishedFigure, features: Mapping[str, float]) -> float:
    """What ``fit`` predicts for ``figure``, priced by cost.latency, in cycles per MAC of the graph."""
    macs = sum(v for k, v in features.items() if k.startswith("macs:"))
    return predict_cycles(features, figure_latency_model(fit, figure)) / macs


@dataclass(frozen=True)
class HeldOutRow:
    """One figure: published, fitted on every figure (in-sample), and held out with its whole board."""

    figure: PublishedFigure
    in_sample_cpm: float
    held_out_cpm: float
    note: str = ""

    @property
    def in_sample_ratio(self) -> float:
        return self.in_sample_cpm / self.figure.cycles_per_mac

    @property
    def held_out_ratio(self) -> float:
        return self.held_out_cpm / self.figure.cycles_per_mac


@dataclass(frozen=True)
class LeaveOneBoardOut:
    fit: SharedFit
    rows: tuple[HeldOutRow, ...] = field(default_factory=tuple)


def leave_one_board_out(features: Mapping[str, Mapping[str, float]],
                        figures: Sequence[PublishedFigure] = FIGURES) -> LeaveOneBoardOut:
    """Fit on every figure, then for each board fit on the other boards' figures and predict its own.

    A held-out board whose core (or runtime) no other board has is predicted from that core's
    prior (``CORE_PRIORS``) or the runtime's (``RUNTIMES``); the row's note says so.
    """
    full = fit_shared(figures, features)
    rows = []
    for board_id in dict.fromkeys(f.board for f in figures):
        train = [f for f in figures if f.board != board_id]
        held = fit_shared(train, features, excluded_board=board_id)
        other_cores = {core_class(BOARDS[f.board].core) for f in train}
        other_runtimes = {f.runtime for f in train}
        for fig in (f for f in figures if f.board == board_id):
            core = core_class(BOARDS[board_id].core)
            notes = []
            if core not in other_cores:
                notes.append(f"only {core} board: held out, its scale is the prior {CORE_PRIORS[core]:.2f}")
            if fig.runtime not in other_runtimes:
                notes.append(f"only {RUNTIMES[fig.runtime].label} figure(s): held out, its factor is the prior "
                             f"{RUNTIMES[fig.runtime].prior:g} ({RUNTIMES[fig.runtime].note})")
            rows.append(HeldOutRow(fig, predicted_cycles_per_mac(full, fig, features[fig.model]),
                                   predicted_cycles_per_mac(held, fig, features[fig.model]), "; ".join(notes)))
    return LeaveOneBoardOut(full, tuple(rows))
