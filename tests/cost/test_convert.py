"""The converter's view: activations fused, duplicates merged, ops in the converter's order."""

from __future__ import annotations

from tinynas.cost import estimate
from tinynas.cost.convert import converter_view
from tinynas.space.graph import GraphBuilder


def test_standalone_relu_after_conv_is_fused_and_duplicates_merged():
    b = GraphBuilder(input_shape=(8, 8, 3))
    c = b.conv2d(b.input, filters=4, activation=None)
    r = b.relu(c)                                  # fused into the conv (only consumer)
    p1 = b.pool2d(r, kind="avg", pool=3, stride=1, padding="same")
    p2 = b.pool2d(r, kind="avg", pool=3, stride=1, padding="same")  # same op, same input: merged
    s = b.add(p1, p2)
    out = b.softmax(b.fully_connected(b.global_avg_pool(s), units=2))
    g = b.build(outputs=[out])
    v = converter_view(g)
    assert [op.kind for op in v.ops] == ["CONV_2D", "AVERAGE_POOL_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]
    assert v.ops[0].attrs["activation"] == "relu"
    assert v.ops[2].inputs[0] == v.ops[2].inputs[1] == v.ops[1].outputs[0]
    assert c not in v.tensors and p2 not in v.tensors
    assert estimate(g).arena_bytes < estimate(g, converted=True).arena_bytes


def test_relu_with_two_consumers_is_kept():
    b = GraphBuilder(input_shape=(8, 8, 3))
    c = b.conv2d(b.input, filters=4, activation=None)
    r = b.relu(c)
    s = b.add(r, c)                                # c has two consumers: nothing to fuse
    out = b.fully_connected(b.global_avg_pool(s), units=2)
    v = converter_view(b.build(outputs=[out]))
    assert [op.kind for op in v.ops] == ["CONV_2D", "RELU", "ADD", "MEAN", "FULLY_CONNECTED"]


def test_chain_is_unchanged():
    b = GraphBuilder(input_shape=(8, 8, 3))
    x = b.fully_connected(b.global_avg_pool(b.conv2d(b.input, filters=4)), units=2)
    g = b.build(outputs=[x])
    assert converter_view(g) is g


def test_branches_are_ordered_by_the_converters_walk():
    # x feeds "relu_*" and "average_pool_2d_*": the walk takes consumers in descending name
    # order, so the pool branch (visited last) comes first in reverse post-order.
    b = GraphBuilder(input_shape=(8, 8, 4))
    x = b.conv2d(b.input, filters=4)
    r = b.relu(x)
    y = b.conv2d(r, filters=4, activation=None)
    p = b.pool2d(x, kind="avg", pool=3, stride=1, padding="same")
    s = b.add(y, p)
    out = b.fully_connected(b.global_avg_pool(s), units=2)
    v = converter_view(b.build(outputs=[out]))
    assert [op.kind for op in v.ops] == [
        "CONV_2D", "AVERAGE_POOL_2D", "RELU", "CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED",
    ]


def test_relu_after_a_pool_is_fused_into_the_pool():
    # NAS-Bench-201 cells: avg pool then ReLU-Conv; Pool2DOptions carry a fused activation.
    b = GraphBuilder(input_shape=(8, 8, 4))
    x = b.conv2d(b.input, filters=4)
    p = b.pool2d(x, kind="avg", pool=3, stride=1, padding="same")
    y = b.conv2d(b.relu(p), filters=4)
    out = b.fully_connected(b.global_avg_pool(b.add(x, y)), units=2)
    v = converter_view(b.build(outputs=[out]))
    assert "RELU" not in [op.kind for op in v.ops]
    assert next(op for op in v.ops if op.kind == "AVERAGE_POOL_2D").attrs["activation"] == "relu"
