"""The latency model against every published MLPerf Tiny / person-detection figure, held out board by board.

Fits the shared latency model (``tinynas.cost.latency_fit``: per-core scale x
runtime factor x per-op-class terms, plus flash wait states) to all published
figures, then, for each board, to the other boards only, and prints for every
figure: the published cycles per MAC and milliseconds, what the built-in profile
predicted before this model (``BEFORE``, the coefficients the profiles had),
the fit on all figures and the held-out prediction with its ratio. Then the
same four MLPerf Tiny models on every built-in MCU profile, before and now.

    .venv/bin/python scripts/bench_profile_latency.py
    .venv/bin/python scripts/bench_profile_latency.py --toml nano33ble   # the [latency] section the fit gives
"""

from __future__ import annotations

import argparse
import math

from tinynas.cost.latency import predict_cycles
from tinynas.cost.latency_fit import (BOARDS, CORE_PRIORS, CYCLES_PER_OUTPUT, DEPTHWISE_PER_POINTWISE, ELEMENT_CYCLES,
                                      INVOKE_OVERHEAD_CYCLES, OP_OVERHEAD_CYCLES, RUNTIMES, SCALAR_COST,
                                      SLOW_PATH_FACTOR, board_latency_model, core_class, leave_one_board_out,
                                      mlperf_features, profile_runtime)
from tinynas.hardware import list_profiles, load_profile
from tinynas.hardware.profile import LatencyModel
from tinynas.resources import data_dir

BOUND = 0.25  # the goal: every held-out prediction within +-25 %

# The built-in MCU profiles' [latency] before the shared fit (issue 11): CONV_2D, DEPTHWISE_CONV_2D,
# FULLY_CONNECTED, default cycles/MAC, op and invoke overhead, and the factor on the per-element
# table below (a Cortex-M4 + CMSIS-NN estimate the old profiles scaled per core).
BEFORE = {
    "ek-ra6m4": (3.7, 7.0, 4.0, 4.5, 2500.0, 8000.0, 0.8),
    "esp32s3-devkitc": (1.5, 2.8, 2.2, 2.2, 2500.0, 10000.0, 0.5),
    "nano33ble": (5.0, 8.5, 6.5, 6.0, 3000.0, 10000.0, 1.0),
    "nicla-vision": (2.5, 4.3, 3.4, 3.0, 2000.0, 8000.0, 0.5),
    "nrf5340dk": (3.4, 6.0, 3.6, 4.0, 2500.0, 8000.0, 0.8),
    "nucleo-g0b1re": (12.0, 18.0, 13.0, 14.0, 4000.0, 12000.0, 2.0),
    "nucleo-h743zi": (2.5, 4.3, 3.4, 3.0, 2000.0, 8000.0, 0.5),
    "nucleo-l010rb": (12.5, 18.5, 13.5, 14.5, 4000.0, 12000.0, 2.0),
    "nucleo-l412kb": (5.0, 8.5, 6.5, 6.0, 3000.0, 10000.0, 1.0),
    "nucleo-l432kc": (5.0, 8.5, 6.5, 6.0, 3000.0, 10000.0, 1.0),
    "nucleo-l4r5zi": (5.0, 8.5, 6.5, 6.0, 3000.0, 10000.0, 1.0),
    "pico": (13.0, 20.0, 15.0, 15.0, 4000.0, 12000.0, 2.0),
    "pico2": (4.0, 7.5, 5.0, 5.0, 2500.0, 8000.0, 0.8),
    "sparkfun-edge": (5.0, 8.5, 6.5, 6.0, 3000.0, 10000.0, 1.0),
    "stm32f746g-disco": (2.3, 4.0, 3.0, 2.8, 2000.0, 8000.0, 0.5),
}
_BEFORE_ELEMENTS = {"default": 8.0, "ADD": 8.0, "MAX_POOL_2D": 12.0, "AVERAGE_POOL_2D": 14.0, "MEAN": 60.0,
                    "SOFTMAX": 80.0, "RESHAPE": 1.0}
# The old profile each published board's figures were compared with (its source line named them).
BEFORE_PROFILE_OF_BOARD = {"ek-ra6m4": "ek-ra6m4", "nrf5340dk": "nrf5340dk", "nucleo-g0b1re": "nucleo-g0b1re",
                           "nucleo-f413zh": "nano33ble", "esp32s3": "esp32s3-devkitc", "rp2040": "pico"}

# Flash of each built-in MCU profile at its clock: wait states (priced at the fitted per-wait-state cost)
# or, for parts that execute from external QSPI flash, a streaming rate in cycles per byte.
PROFILE_FLASH: dict[str, tuple[int, float | None, str]] = {
    "ek-ra6m4": (3, None, "RA6M4 at 200 MHz: 3 wait cycles (user's manual, FLWT)"),
    "esp32s3-devkitc": (0, 6.0, "XIP: quad SPI flash at 80 MHz, 2 flash clocks per byte = 6 CPU cycles at 240 MHz"),
    "nano33ble": (1, None, "nRF52840 at 64 MHz: assumed 1 (flash behind an instruction cache; not checked)"),
    "nicla-vision": (4, None, "STM32H747 at 480 MHz (AXI 240 MHz): 4 WS (RM0399 flash latency table)"),
    "nrf5340dk": (1, None, "nRF5340 at 128 MHz: assumed 1 (flash behind a cache; not checked)"),
    "nucleo-g0b1re": (2, None, "STM32G0B1 at 64 MHz: 2 WS (RM0444, range 1)"),
    "nucleo-h743zi": (4, None, "STM32H743 at 480 MHz (AXI 240 MHz): 4 WS (RM0433 flash latency table)"),
    "nucleo-l010rb": (1, None, "STM32L010 at 32 MHz: 1 WS above 16 MHz (STM32L0 reference manual, range 1)"),
    "nucleo-l412kb": (4, None, "STM32L412 at 80 MHz: 4 WS (RM0394, range 1)"),
    "nucleo-l432kc": (4, None, "STM32L432 at 80 MHz: 4 WS (RM0394, range 1)"),
    "nucleo-l4r5zi": (5, None, "STM32L4R5 at 120 MHz: 5 WS (RM0432, range 1 boost)"),
    "pico": (0, 4.0, "XIP: quad SPI flash at clk_sys/2, 2 flash clocks per byte = 4 CPU cycles"),
    "pico2": (0, 4.0, "XIP: quad SPI flash, assumed at clk_sys/2 like the RP2040 = 4 CPU cycles per byte"),
    "sparkfun-edge": (0, None, "Apollo3 at 48 MHz: assumed 0 (flash cache; not checked)"),
    "stm32f746g-disco": (7, None, "STM32F746 at 216 MHz: 7 WS (RM0385, 2.7-3.6 V)"),
}


def before_model(profile_id: str) -> LatencyModel:
    conv, dw, fc, default, op, invoke, scale = BEFORE[profile_id]
    return LatencyModel(cycles_per_mac={"CONV_2D": conv, "DEPTHWISE_CONV_2D": dw, "FULLY_CONNECTED": fc,
                                        "default": default},
                        cycles_per_element={k: v * scale for k, v in _BEFORE_ELEMENTS.items()},
                        op_overhead_cycles=op, invoke_overhead_cycles=invoke, source="before issue 11")


def cpm(features: dict[str, float], model: LatencyModel) -> float:
    return predict_cycles(features, model) / sum(v for k, v in features.items() if k.startswith("macs:"))


def _ratio(x: float) -> str:
    return f"{x:5.2f}" + ("*" if abs(math.log(x)) > math.log(1 + BOUND) else " ")


def print_figures(result, features) -> None:
    fit = result.fit
    print("Shared fit on all", fit.figures, "published figures (Cortex-M33 + TFLM/CMSIS-NN = 1):")
    print("  terms (M33 cycles): " + ", ".join(f"{k} {v:.4g}" for k, v in fit.terms.items())
          + f"; fixed: depthwise {DEPTHWISE_PER_POINTWISE:g} x pw, {CYCLES_PER_OUTPUT:g}/output, "
            f"{OP_OVERHEAD_CYCLES:g}/op, {INVOKE_OVERHEAD_CYCLES:g}/invoke, slow path x{SLOW_PATH_FACTOR:g}")
    print("  core MAC scale (prior; overhead scale): " + ", ".join(
        f"{c} {v:.3f} ({CORE_PRIORS[c]:.2f}; {SCALAR_COST[c]:.2f})" for c, v in sorted(fit.core_scale.items())))
    print("  runtime factor: " + ", ".join(f"{RUNTIMES[r].label} {v:.3f}"
                                          for r, v in sorted(fit.runtime_factor.items())))
    print()
    print("cycles/MAC: published | old profile (ratio) | fit on all (ratio) | board held out (ratio); "
          f"* = outside +-{BOUND:.0%}")
    head = (f"{'board':<16}{'core':<14}{'runtime':<26}{'model':<6}{'MHz':>4} {'pub':>6} {'pub ms':>8}  "
            f"{'old':>6} {'ratio':>6}  {'fit':>6} {'ratio':>6}  {'held':>6} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    notes: dict[str, int] = {}
    for row in result.rows:
        fig = row.figure
        board = BOARDS[fig.board]
        # The old profiles modelled optimized kernels: no "before" for the reference-kernel figure.
        old_pid = BEFORE_PROFILE_OF_BOARD.get(fig.board) if fig.runtime != "tflm-reference" else None
        old = cpm(features[fig.model], before_model(old_pid)) if old_pid else None
        old_cells = f"{old:6.2f} {_ratio(old / fig.cycles_per_mac)}" if old else f"{'-':>6} {'':>6}"
        mark = ""
        if row.note:
            mark = f" [{notes.setdefault(row.note, len(notes) + 1)}]"
        print(f"{fig.board:<16}{core_class(board.core):<14}{RUNTIMES[fig.runtime].label:<26}{fig.model:<6}"
              f"{board.clock_hz / 1e6:4.0f} {fig.cycles_per_mac:6.2f} {fig.published_ms:8.2f}  {old_cells}  "
              f"{row.in_sample_cpm:6.2f} {_ratio(row.in_sample_ratio)}  {row.held_out_cpm:6.2f} "
              f"{_ratio(row.held_out_ratio)}{mark}")
    for note, n in notes.items():
        print(f"  [{n}] {note}")
    print()
    ratios = [r.in_sample_ratio for r in result.rows]
    rms = math.sqrt(sum(math.log(x) ** 2 for x in ratios) / len(ratios))
    print(f"fit on all: ratios {min(ratios):.2f} to {max(ratios):.2f}, rms error {math.exp(rms) - 1:.1%}")
    predictable = [r for r in result.rows if "factor is the prior 1 (no prior" not in r.note]
    inside = [r for r in predictable if abs(math.log(r.held_out_ratio)) <= math.log(1 + BOUND)]
    print(f"held out: {len(inside)} of {len(predictable)} figures within +-{BOUND:.0%} "
          f"(the reference-kernel figure has nothing to be predicted from and is left out); outside:")
    for r in predictable:
        if r not in inside:
            why = r.note or "shared core and runtime"
            print(f"  {r.figure.board} {r.figure.model}: {r.held_out_ratio:.2f} ({why})")
    print()
    print("worst error per board that had a profile fitted to it: old profile -> shared fit")
    for board_id, pid in BEFORE_PROFILE_OF_BOARD.items():
        rows = [r for r in result.rows if r.figure.board == board_id and r.figure.runtime != "tflm-reference"]
        old = max(abs(math.log(cpm(features[r.figure.model], before_model(pid)) / r.figure.cycles_per_mac))
                  for r in rows)
        new = max(abs(math.log(r.in_sample_ratio)) for r in rows)
        print(f"  {board_id:<16} ({pid} before): {math.exp(old) - 1:5.1%} -> {math.exp(new) - 1:5.1%}")


def print_profiles(features) -> None:
    print()
    print("MLPerf Tiny models on the built-in MCU profiles: ms before -> now (cycles/MAC now)")
    print(f"{'profile':<18}{'core':<15}{'MHz':>4}" + "".join(f"{name:>26}" for name in features))
    for pid in sorted(BEFORE):
        profile = load_profile(pid, overlays=False)
        cells = []
        for feats in features.values():
            before = predict_cycles(feats, before_model(pid)) / profile.clock_hz * 1e3
            now = predict_cycles(feats, profile.latency) / profile.clock_hz * 1e3
            cells.append(f"{before:8.1f} -> {now:7.1f} ({cpm(feats, profile.latency):4.2f})")
        print(f"{pid:<18}{profile.core:<15}{profile.clock_hz / 1e6:4.0f}" + "".join(f"{c:>26}" for c in cells))


def latency_toml(fit, profile_id: str) -> str:
    """The [latency] section (with the comment above it) the shared fit gives a built-in profile."""
    profile = load_profile(profile_id, overlays=False)
    ws, per_byte, flash_note = PROFILE_FLASH[profile_id]
    runtime = profile_runtime(profile.kernel_library)
    model = board_latency_model(fit, core=profile.core, runtime=runtime, flash_wait_states=ws,
                                cycles_per_weight_byte=per_byte)
    core = core_class(profile.core)
    s, r = fit.core_scale.get(core, CORE_PRIORS[core]), fit.factor(runtime)
    scale = (f"{core} MAC scale {s:.3f} (overheads {SCALAR_COST[core]:.3f}) x {RUNTIMES[runtime].label} "
             f"{r:.3f}")
    t = fit.terms
    im2col = RUNTIMES[runtime].im2col
    conv_note = (f"fitted term {t['conv']:.3f} x im2col factor {t['im2col_factor']:.3f} (CMSIS-NN) x MAC scale"
                 if im2col else f"fitted term {t['conv']:.3f} x MAC scale")
    def g(value: float) -> str:  # four significant digits, never an exponent (TOML reads both; people read this)
        return repr(round(value, max(0, 3 - math.floor(math.log10(abs(value))))) if value else 0.0)

    lines = [
        "# Latency model (tinynas.cost.latency): cycles = invoke_overhead + sum over ops of",
        "#   MACs x cycles_per_mac[CONV_2D_1X1 | op | default] (x slow_path_factor off the SIMD fast path)",
        "#   + output elements x cycles_per_element[op] + op_overhead + weight bytes x flash cost;",
        "#   ms = cycles / clock_hz x 1000. MicroNets (Banbury et al., MLSys 2021): MCU latency is close to linear.",
        f"# Every number below is the shared fit on {fit.figures} published MLPerf Tiny and person-detection",
        "# latencies (tinynas/cost/latency_fit.py, scripts/bench_profile_latency.py):",
        f"#   {scale}.",
        "[latency]",
        f'source = "shared fit on {fit.figures} published MLPerf Tiny / person-detection latencies: {scale} '
        f'(tinynas/cost/latency_fit.py)"',
        f"op_overhead_cycles = {g(model.op_overhead_cycles)}  # {OP_OVERHEAD_CYCLES:g} M33 cycles per operator "
        "(assumed; 'thousands of cycles', MicroNets) x overhead scale",
        f"invoke_overhead_cycles = {g(model.invoke_overhead_cycles)}  # {INVOKE_OVERHEAD_CYCLES:g} per Invoke() "
        "(assumed) x overhead scale",
    ]
    if model.fast_path_channels > 1:
        lib = "CMSIS-NN's DSP kernels step 4 int8 channels" if model.fast_path_channels == 4 else \
            "ESP-NN's ESP32-S3 kernels step 8 channels (esp_nn_conv_s8_mult8_1x1)"
        lines += [f"fast_path_channels = {model.fast_path_channels}  # {lib}; leftovers run a scalar loop",
                  f"slow_path_factor = {model.slow_path_factor!r}  # a leftover-loop MAC vs a SIMD-loop MAC "
                  "(assumed from the kernel code)"]
    else:
        lines.append("fast_path_channels = 1  # no SIMD MAC on this core: no separate fast path")
    lines.append(f"flash_wait_states = {ws}  # {flash_note}")
    if per_byte is not None:
        lines.append(f"cycles_per_weight_byte = {per_byte!r}  # weights streamed from XIP flash (see above)")
    else:
        lines.insert(-1, f"# each weight byte read from flash costs flash_wait_states x {t['wait_state_cycles']:.3g} "
                         "cycles (fitted)")
    lines += [
        "",
        "[latency.cycles_per_mac]",
        f"CONV_2D_1X1 = {g(model.cycles_per_mac['CONV_2D_1X1'])}  # pointwise: fitted term {t['pw']:.3f} x MAC scale",
        f"CONV_2D = {g(model.cycles_per_mac['CONV_2D'])}  # k x k: {conv_note}",
        f"DEPTHWISE_CONV_2D = {g(model.cycles_per_mac['DEPTHWISE_CONV_2D'])}  # {DEPTHWISE_PER_POINTWISE:g} x "
        "pointwise (assumed: depthwise costs more per MAC, MicroNets)",
        f"FULLY_CONNECTED = {g(model.cycles_per_mac['FULLY_CONNECTED'])}  # fitted term {t['fc']:.3f} x MAC scale",
        f"default = {g(model.cycles_per_mac['default'])}  # other MAC ops: priced like a k x k conv",
        "",
        "[latency.cycles_per_element]",
        "# per output element: estimates in M33 cycles x overhead scale (too small here to fit); conv/FC",
        f"# outputs are requantized ({CYCLES_PER_OUTPUT:g} M33 cycles, ~10 instructions of arm_nn_requantize)",
    ]
    for key in (*ELEMENT_CYCLES, "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        lines.append(f"{key} = {g(model.cycles_per_element[key])}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toml", nargs="*", metavar="PROFILE",
                        help="print the [latency] section the fit gives these profiles (all MCU profiles if none)")
    args = parser.parse_args()
    features = mlperf_features(data_dir("benchmarks") / "mlperf_tiny")
    result = leave_one_board_out(features)
    if args.toml is not None:
        for pid in args.toml or sorted(PROFILE_FLASH):
            print(f"## {pid}\n{latency_toml(result.fit, pid)}")
        return
    print_figures(result, features)
    print_profiles(features)
    missing = sorted(p.id for p in list_profiles(kind="mcu", overlays=False) if p.id not in BEFORE)
    if missing:
        print(f"\nMCU profiles without a before/now row: {', '.join(missing)}")


if __name__ == "__main__":
    main()
