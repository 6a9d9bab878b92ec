"""MACs, parameters, latency and budget checks on hand-built graphs, where the answer is known."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tinynas.cost import BudgetCheck, estimate
from tinynas.cost.counts import graph_work
from tinynas.cost.latency import latency_ms
from tinynas.errors import CostError
from tinynas.hardware.profile import Ecosystem, HardwareProfile, LatencyModel, SerialSettings
from tinynas.space.graph import Graph, GraphBuilder


def small_graph() -> Graph:
    b = GraphBuilder(input_shape=(8, 8, 3))
    x = b.conv2d(b.input, filters=4, kernel=3, stride=1)            # 8*8*4*3*3*3 = 6912 MACs
    x = b.depthwise_conv2d(x, kernel=3, stride=2)                   # 4*4*4*3*3   = 576
    x = b.pool2d(x, kind="max", pool=2)                             # 2*2*4 = 16 elements
    x = b.global_avg_pool(x)                                        # 4 elements
    x = b.fully_connected(x, units=5)                               # 4*5 = 20
    x = b.softmax(x)                                                # 5 elements
    return b.build(outputs=[x])


def profile(**latency) -> HardwareProfile:
    model = LatencyModel(
        cycles_per_mac=latency.get("cpm", {"CONV_2D": 2.0, "DEPTHWISE_CONV_2D": 4.0, "default": 3.0}),
        cycles_per_element=latency.get("cpe", {"MAX_POOL_2D": 10.0, "default": 1.0}),
        op_overhead_cycles=100.0, invoke_overhead_cycles=1000.0,
    )
    return HardwareProfile(
        id="toy", name="toy board", kind="mcu", core="cortex-m4", clock_hz=1_000_000, sram_bytes=20_000,
        flash_bytes=100_000, reserved_sram_bytes=4_000, runtime_flash_bytes=60_000, kernel_library="reference",
        runtime="tflm", latency=model, serial=SerialSettings(), ecosystem=Ecosystem(default_template="cmake"),
        latency_target_ms=5.0,
    )


def test_macs_params_and_work_per_op():
    g = small_graph()
    work = graph_work(g)
    assert [(w.kind, w.macs, w.elements) for w in work] == [
        ("CONV_2D", 6912, 0), ("DEPTHWISE_CONV_2D", 576, 0), ("MAX_POOL_2D", 0, 16),
        ("MEAN", 0, 4), ("FULLY_CONNECTED", 20, 0), ("SOFTMAX", 0, 5),
    ]
    cost = estimate(g)
    assert cost.macs == 6912 + 576 + 20
    assert cost.params == (4 * 27 + 4) + (36 + 4) + (20 + 5)
    assert cost.latency_ms is None and cost.fits is None and cost.checks == ()


def test_work_counts_outputs_weight_bytes_and_fast_path_span():
    conv, dw, _, _, fc, _ = graph_work(small_graph())
    # Outputs are requantized, weights streamed once, and the span is what CMSIS-NN's SIMD loop steps through.
    assert (conv.outputs, conv.weight_bytes, conv.fast_path_span, conv.variant) == (256, 108, 27, "")
    assert (dw.outputs, dw.weight_bytes, dw.fast_path_span) == (64, 36, 4)
    assert (fc.outputs, fc.weight_bytes, fc.fast_path_span) == (5, 20, 4)
    b = GraphBuilder(input_shape=(4, 4, 6))
    x = b.conv2d(b.input, filters=8, kernel=1)
    x = b.depthwise_conv2d(x, kernel=3, depth_multiplier=2)
    pointwise, multiplied = graph_work(b.build(outputs=[x]))
    assert (pointwise.variant, pointwise.price_key, pointwise.fast_path_span) == ("CONV_2D_1X1", "CONV_2D_1X1", 6)
    # A depth multiplier leaves CMSIS-NN's channel-vectorized depthwise kernels: no MAC is on the fast path.
    assert multiplied.fast_path_span == 1


def test_latency_is_the_linear_model_and_budgets_are_checked():
    cost = estimate(small_graph(), profile=profile())
    cycles = 1000 + 6 * 100 + 6912 * 2 + 576 * 4 + 16 * 10 + 4 * 1 + 20 * 3 + 5 * 1
    assert cost.latency_ms == pytest.approx(cycles / 1_000_000 * 1000)
    checks = {c.name: c for c in cost.checks}
    assert checks["sram"].budget == 16_000 and checks["sram"].need == cost.arena_bytes
    assert checks["flash"].budget == 40_000 and checks["flash"].need == cost.flash_bytes
    assert checks["latency"].budget == 5.0
    assert cost.fits is (cost.arena_bytes <= 16_000 and cost.flash_bytes <= 40_000 and cost.latency_ms <= 5.0)
    tight = estimate(small_graph(), profile=profile(), latency_target_ms=cost.latency_ms / 2)
    lat = {c.name: c for c in tight.checks}["latency"]
    assert not lat.fits and lat.margin == pytest.approx(-cost.latency_ms / 2)
    assert tight.fits is False
    assert tight.to_json()["checks"][2]["fits"] is False


def test_budget_check_without_a_budget_fits():
    assert BudgetCheck("latency", 12.0, None).fits and BudgetCheck("latency", 12.0, None).margin is None


def test_missing_default_coefficient_is_a_cost_error():
    p = profile(cpm={"CONV_2D": 2.0})
    with pytest.raises(CostError, match="DEPTHWISE_CONV_2D"):
        estimate(small_graph(), profile=p)
    with pytest.raises(CostError, match="clock_hz"):
        latency_ms(graph_work(small_graph()), p.latency, clock_hz=0)


def test_empty_graph_is_a_cost_error():
    with pytest.raises(CostError, match="no operators"):
        estimate(Graph(tensors={}, ops=[], inputs=[], outputs=[]))


def test_cost_model_imports_no_tensorflow():
    code = (
        "import sys\n"
        "from tinynas.space.graph import GraphBuilder\n"
        "from tinynas.cost import estimate\n"
        "b = GraphBuilder(input_shape=(8, 8, 3)); x = b.conv2d(b.input, filters=4)\n"
        "x = b.global_avg_pool(x); x = b.fully_connected(x, units=3)\n"
        "estimate(b.build(outputs=[x]))\n"
        "bad = [m for m in ('tensorflow', 'keras', 'tflite_micro') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def attention_graph() -> Graph:
    """Tokens (1, 6, 8) -> one head of attention on them (issue 14's ops)."""
    b = GraphBuilder(input_shape=(6, 8))
    x = b.input
    q = b.fully_connected(x, units=8)                               # 6*8*8 = 384 MACs
    k = b.fully_connected(x, units=8)                               # 384
    p = b.softmax(b.batch_matmul(q, k, adj_y=True))                 # (1, 6, 6): 6*6*8 = 288 MACs, 36 elements
    v = b.transpose(b.fully_connected(x, units=8), perm=(0, 2, 1))  # 384 MACs; (1, 8, 6): 48 elements
    o = b.batch_matmul(p, v, adj_y=True)                            # (1, 6, 8): 6*8*6 = 288 MACs
    y = b.rsqrt(b.sub(o, b.mean(o, axes=(2,), keepdims=True)))      # 6 + 48 + 48 elements
    y = b.mean(y, axes=(1,), keepdims=False)                        # 8
    return b.build(outputs=[b.softmax(b.fully_connected(y, units=3))])  # 24 MACs, 3 elements


def test_batch_matmul_macs_and_attention_parameters():
    g = attention_graph()
    work = graph_work(g)
    assert [(w.kind, w.macs) for w in work if w.macs] == [
        ("FULLY_CONNECTED", 384), ("FULLY_CONNECTED", 384), ("BATCH_MATMUL", 288), ("FULLY_CONNECTED", 384),
        ("BATCH_MATMUL", 288), ("FULLY_CONNECTED", 24)]
    bmm = [w for w in work if w.kind == "BATCH_MATMUL"]
    assert all(w.weight_bytes == 0 and w.fast_path_span in (8, 6) for w in bmm)
    cost = estimate(g)
    assert cost.macs == 3 * 384 + 2 * 288 + 24
    assert cost.params == 3 * (64 + 8) + (24 + 3)  # BATCH_MATMUL has no weights


def test_ops_a_profile_does_not_price_cost_a_fraction_of_its_default_element():
    from tinynas.cost.latency import RELATIVE_ELEMENT_CYCLES

    g = attention_graph()
    prof = profile(cpm={"default": 1.0}, cpe={"default": 2.0})
    base = 1000.0 + 100.0 * len(g.ops)  # invoke + per-op overheads
    macs = 3 * 384 + 2 * 288 + 24
    elements = (36 + 3) * 2.0 + 48 * 2.0 * RELATIVE_ELEMENT_CYCLES["TRANSPOSE"] + (6 + 8) * 2.0 \
        + 48 * 2.0 * (RELATIVE_ELEMENT_CYCLES["SUB"] + RELATIVE_ELEMENT_CYCLES["RSQRT"])
    assert latency_ms(graph_work(g), prof.latency, clock_hz=1_000_000) == pytest.approx(
        (base + macs + elements) / 1000.0)
