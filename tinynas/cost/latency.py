"""Latency on a board: a linear model over each operator's work, with a profile's coefficients.

Banbury et al., MicroNets (MLSys 2021): on MCUs latency is close to linear in
the work of each op. Per op this prices MACs x ``cycles_per_mac`` (keyed by the
op's variant, e.g. ``CONV_2D_1X1``, else its kind, else ``default``), where a MAC
whose channel span misses the kernel's SIMD multiple costs ``slow_path_factor``
times more (CMSIS-NN's scalar leftover loops); output elements x
``cycles_per_element`` (ops without MACs, and requantization of conv/FC outputs
where the profile prices it); weight bytes streamed from flash x a per-byte cost
that grows with the part's flash wait states; plus ``op_overhead_cycles``; plus an
invoke overhead; divided by the clock.

The model is linear in named slots (``macs:<key>``, ``elements:<kind>``, ``ops``,
``invokes``). ``graph_features`` counts a graph's raw features once (they are
stored in measurement files); ``slots`` turns them into slot values for one
profile; ``tinynas calibrate`` fits exactly those slots, so what this module
prices is what calibration fits. The shared fit of the coefficients to published
MLPerf Tiny figures is ``tinynas.cost.latency_fit``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Mapping

from tinynas.cost.counts import MAC_KINDS, VARIANTS, OpWork, graph_work
from tinynas.errors import CostError
from tinynas.hardware.profile import LatencyModel

if TYPE_CHECKING:
    from tinynas.space.graph import Graph

# SIMD multiples for which slow-path MACs are counted: CMSIS-NN's DSP kernels step 4 int8 channels
# at a time, ESP-NN's ESP32-S3 kernels 8 (esp_nn_conv_s8_mult8_1x1_esp32s3), 16-lane vector units 16.
FAST_PATH_MULTIPLES = (4, 8, 16)
# Cycles per weight byte per flash wait state, fitted with every published figure
# (tinynas.cost.latency_fit; scripts/bench_profile_latency.py prints it): a profile without an explicit
# cycles_per_weight_byte pays flash_wait_states x this for each weight byte it streams per inference.
WAIT_STATE_CYCLES_PER_WEIGHT_BYTE = 0.0874

# Cost of an output element of an op kind a profile does not price, relative to the profile's
# cycles_per_element 'default' (one ADD-like requantized element). No published per-element
# figures exist for these TFLM int8 kernels: every factor is an assumption read from the
# kernel code (tflite-micro kernels/*.cc, CMSIS-NN), to be replaced by `tinynas calibrate`.
#   SUB, MUL: the same rescale-and-add loop as ADD (assumed 1x);
#   SQUARED_DIFFERENCE: two input rescales and a requantize of the square (assumed 1.5x);
#   RSQRT: int8 rsqrt dequantizes, takes a fixed-point inverse square root, requantizes (assumed 4x);
#   HARD_SWISH: a fixed-point piecewise formula with two multiplies (assumed 1.5x);
#   TRANSPOSE, CONCATENATION, STRIDED_SLICE: index arithmetic and a byte copy (assumed 0.5x, 0.25x, 0.25x).
# BATCH_MATMUL is priced per MAC (cycles_per_mac BATCH_MATMUL, else 'default', i.e. like a
# k x k conv: CMSIS-NN's arm_batch_matmul_s8 runs the same s8 mat-mult core; assumed).
RELATIVE_ELEMENT_CYCLES: dict[str, float] = {
    "SUB": 1.0, "MUL": 1.0, "SQUARED_DIFFERENCE": 1.5, "RSQRT": 4.0, "HARD_SWISH": 1.5,
    "TRANSPOSE": 0.5, "CONCATENATION": 0.25, "STRIDED_SLICE": 0.25,
}

FEATURE_OPS = "ops"  # operator count: the per-operator overhead
FEATURE_INVOKE = "invokes"  # always 1: the per-invoke overhead
FEATURE_WEIGHT_BYTES = "weight_bytes"  # int8 weight bytes streamed per inference (priced, not fitted)
_SLOW = "slow_macs"  # slow_macs:<multiple>:<price key>: MACs off the fast path for that SIMD multiple


def work_features(work: Iterable[OpWork]) -> dict[str, float]:
    """Raw, profile-independent features of a list of ops: ``macs:<key>``, ``elements:<kind>``,
    ``slow_macs:<multiple>:<key>``, ``weight_bytes``, ``ops`` and ``invokes`` (1)."""
    feats: dict[str, float] = {FEATURE_OPS: 0.0, FEATURE_INVOKE: 1.0, FEATURE_WEIGHT_BYTES: 0.0}

    def add(key: str, value: float) -> None:
        feats[key] = feats.get(key, 0.0) + float(value)

    for w in work:
        feats[FEATURE_OPS] += 1.0
        if not w.macs:
            add(f"elements:{w.kind}", w.elements)
            continue
        key = w.price_key
        add(f"macs:{key}", w.macs)
        add(f"elements:{w.kind}", w.outputs)
        feats[FEATURE_WEIGHT_BYTES] += float(w.weight_bytes)
        span = w.fast_path_span
        for multiple in FAST_PATH_MULTIPLES:
            if span and span % multiple:
                add(f"{_SLOW}:{multiple}:{key}", w.macs * (span % multiple) / span)
    return feats


def graph_features(graph: "Graph") -> dict[str, float]:
    """``work_features`` of every operator of ``graph`` (as it stands: callers costing a Keras-side
    graph pass the converter's view, ``cost.convert.converter_view``)."""
    return work_features(graph_work(graph))


def weight_byte_cycles(model: LatencyModel) -> float:
    """Cycles per weight byte streamed: the profile's own figure, else its flash wait states x the
    fitted per-wait-state cost."""
    if model.cycles_per_weight_byte is not None:
        return float(model.cycles_per_weight_byte)
    return model.flash_wait_states * WAIT_STATE_CYCLES_PER_WEIGHT_BYTE


def slots(features: Mapping[str, float], model: LatencyModel) -> tuple[dict[str, float], float]:
    """The slot values ``model`` prices these features by, and the cycles it prices without a slot
    (weight bytes). Slow-path MACs add ``slow_path_factor - 1`` MACs to their op's slot when their
    multiple is the model's ``fast_path_channels``; outputs of ops with MACs count only where the
    model has a ``cycles_per_element`` entry for that kind. Raises CostError on an unknown feature."""
    values: dict[str, float] = {}
    fixed = 0.0
    for key, value in features.items():
        if not value:
            continue
        if key == FEATURE_WEIGHT_BYTES:
            fixed += value * weight_byte_cycles(model)
        elif key in (FEATURE_OPS, FEATURE_INVOKE) or key.startswith("macs:"):
            values[key] = values.get(key, 0.0) + value
        elif key.startswith("elements:"):
            kind = key.partition(":")[2]
            if kind in MAC_KINDS and kind not in model.cycles_per_element:
                continue
            values[key] = values.get(key, 0.0) + value
        elif key.startswith(f"{_SLOW}:"):
            _, multiple, price_key = key.split(":", 2)
            if int(multiple) == model.fast_path_channels and model.slow_path_factor != 1.0:
                slot = f"macs:{price_key}"
                values[slot] = values.get(slot, 0.0) + (model.slow_path_factor - 1.0) * value
        else:
            raise CostError(f"unknown latency feature {key!r}; known: macs:<op>, elements:<op>, "
                            f"{_SLOW}:<n>:<op>, {FEATURE_WEIGHT_BYTES}, {FEATURE_OPS}, {FEATURE_INVOKE}")
    return values, fixed


def coefficient(model: LatencyModel, slot: str) -> float:
    """The cycles ``model`` charges per unit of ``slot``. A ``macs:`` slot falls back from a variant
    (``CONV_2D_1X1``) to its op, then to ``default``; raises CostError when nothing prices it."""
    if slot == FEATURE_OPS:
        return float(model.op_overhead_cycles)
    if slot == FEATURE_INVOKE:
        return float(model.invoke_overhead_cycles)
    table, _, key = slot.partition(":")
    if table == "macs":
        for candidate in (key, VARIANTS.get(key), "default"):
            if candidate and candidate in model.cycles_per_mac:
                return float(model.cycles_per_mac[candidate])
        raise CostError(f"latency model has no cycles_per_mac for {key} and no 'default'")
    if table == "elements":
        if key in model.cycles_per_element:
            return float(model.cycles_per_element[key])
        if key in MAC_KINDS:
            return 0.0
        return float(model.cycles_per_element.get("default", 0.0)) * RELATIVE_ELEMENT_CYCLES.get(key, 1.0)
    raise CostError(f"unknown latency slot {slot!r}")


def predict_cycles(features: Mapping[str, float], model: LatencyModel) -> float:
    """Cycles per inference that ``model`` predicts for raw ``features`` (``work_features``)."""
    values, fixed = slots(features, model)
    return fixed + sum(v * coefficient(model, k) for k, v in values.items())


def op_cycles(work: OpWork, model: LatencyModel) -> float:
    """Cycles of one operator under ``model`` (its share of the invoke overhead excluded)."""
    return predict_cycles(work_features([work]), model) - model.invoke_overhead_cycles


def latency_ms(work: list[OpWork], model: LatencyModel, *, clock_hz: int) -> float:
    """Predicted milliseconds for one inference."""
    if clock_hz <= 0:
        raise CostError(f"clock_hz must be positive, got {clock_hz}")
    return predict_cycles(work_features(work), model) / clock_hz * 1000.0


def with_coefficients(model: LatencyModel, values: Mapping[str, float], *, source: str) -> LatencyModel:
    """A copy of ``model`` with the coefficients of these slots replaced (a slot the model priced
    through a fallback gets its own entry)."""
    cpm = dict(model.cycles_per_mac)
    cpe = dict(model.cycles_per_element)
    op_overhead, invoke_overhead = model.op_overhead_cycles, model.invoke_overhead_cycles
    for slot, value in values.items():
        if slot == FEATURE_OPS:
            op_overhead = value
        elif slot == FEATURE_INVOKE:
            invoke_overhead = value
        else:
            table, _, key = slot.partition(":")
            if table not in ("macs", "elements"):
                raise CostError(f"unknown latency slot {slot!r}")
            (cpm if table == "macs" else cpe)[key] = float(value)
    return replace(model, cycles_per_mac=cpm, cycles_per_element=cpe, op_overhead_cycles=float(op_overhead),
                   invoke_overhead_cycles=float(invoke_overhead), source=source)
