"""Trainer tests: one temporary TINYNAS_HOME for the session, and a small graph builder (no search space needed)."""

from __future__ import annotations

import pytest

from tinynas.space.graph import Graph, GraphBuilder


@pytest.fixture(autouse=True)
def _home(tinynas_home):
    return tinynas_home


def _small_cnn(input_shape=(8, 8, 1), num_classes=10, filters=16) -> Graph:
    b = GraphBuilder(input_shape=input_shape, name="small_cnn")
    x = b.conv2d(b.input, filters=filters, stride=1)
    x = b.depthwise_conv2d(x, stride=2)
    x = b.conv2d(x, filters=2 * filters, kernel=1, activation="relu6")
    x = b.global_avg_pool(x)
    x = b.fully_connected(x, units=num_classes)
    return b.build(outputs=[b.softmax(x)])


@pytest.fixture(scope="session")
def small_cnn():
    """``small_cnn(input_shape=(8, 8, 1), num_classes=10, filters=16) -> Graph``."""
    return _small_cnn
