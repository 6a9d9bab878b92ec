"""``gcn``: graph convolutional networks on the fixed graph of a graph dataset (Kipf & Welling 2017).

A layer is ``relu(A_hat @ X @ W)`` with ``A_hat`` the dataset's adjacency,
normalized once (symmetric ``D^-1/2 A D^-1/2`` or random-walk ``D^-1 A``, with or
without self loops) and baked into the model as a constant. TFLite Micro has no
gather/scatter message passing, but ``A_hat @ Y`` is a FULLY_CONNECTED with
``A_hat`` as its weights applied to ``Y`` transposed, which converts to int8
TRANSPOSE + FULLY_CONNECTED + TRANSPOSE and runs in TFLM. The Graph below is the
converter's op sequence for such a Keras model, batch-less tensors included (the
converter drops the batch axis around the transposes and only restores it where a
residual ADD or the readout needs it).

Readouts: ``mean`` (MEAN over nodes), ``max`` (REDUCE_MAX over nodes) and
``flatten`` (every node's features into the classifier: the graph is fixed, so node
order carries meaning, e.g. where on the pixel grid) for graph tasks, and ``node``
for node tasks: the last input feature marks the node asked
about (one-hot over nodes, as the ``karate-club`` dataset writes it) and the
readout keeps that node's features (a fixed FULLY_CONNECTED picks the marker
times the node count, MUL masks, MEAN over the nodes leaves the marked node's row).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tinynas.errors import SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace, register_space
from tinynas.space.graph import Graph, GraphBuilder

LAYERS = (1, 2, 3, 4)
HIDDEN = (8, 16, 24, 32, 48, 64)
NORMALIZATIONS = ("symmetric", "random_walk")
SELF_LOOPS = (True, False)
RESIDUALS = (False, True)
READOUTS = ("mean", "max", "flatten", "node")
#: Readouts by task: a graph task has no marked node to read, and pooling over a node task's nodes
#: loses which node was asked about (flatten keeps it: the marker is among the features).
GRAPH_READOUTS = ("mean", "max", "flatten")
NODE_READOUTS = ("flatten", "node")
MAX_NODES = 256  # A_hat is nodes x nodes int8 weights: 64 KB of flash at 256 nodes


def normalized_adjacency(adjacency: np.ndarray, *, normalization: str, self_loops: bool) -> np.ndarray:
    """``A_hat`` as float32: symmetric ``D^-1/2 (A [+ I]) D^-1/2`` (Kipf & Welling 2017, eq. 2) or
    random-walk ``D^-1 (A [+ I])`` (a mean over neighbours). A node without edges keeps a zero row."""
    a = np.asarray(adjacency, dtype=np.float64).copy()
    np.fill_diagonal(a, 1.0 if self_loops else 0.0)
    degree = a.sum(axis=1)
    inv = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    if normalization == "symmetric":
        s = np.sqrt(inv)
        out = s[:, None] * a * s[None, :]
    elif normalization == "random_walk":
        out = inv[:, None] * a
    else:
        raise SpaceError(f"gcn: normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return out.astype(np.float32)


@register_space
class GcnSpace(SearchSpace):
    """GCN layers on a fixed graph: input ``(nodes, features)``, the dataset's adjacency as a constant."""

    name = "gcn"
    description = ("graph convolutions relu(A_hat X W) on the dataset's fixed graph (int8 TRANSPOSE + "
                   "FULLY_CONNECTED in TFLM): layers 1-4, width 8-64, A normalization, self loops, residual, "
                   "readout mean/max/flatten/node")
    default_input_shape = (64, 3)
    takes_adjacency = True

    def __init__(self, *, input_shape: Sequence[int], num_classes: int, adjacency: np.ndarray | None = None,
                 node_task: bool | None = None) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        if len(self.input_shape) != 2:
            raise SpaceError(
                f"gcn takes graph samples of shape (nodes, features), got input shape {self.input_shape}; "
                "use a graph dataset (digits-grid, karate-club, or a .npz with an adjacency array)")
        nodes = self.input_shape[0]
        if not 2 <= nodes <= MAX_NODES:
            raise SpaceError(f"gcn: a graph of {nodes} nodes is outside 2..{MAX_NODES} (A_hat is stored as "
                             f"nodes x nodes weights); use a smaller graph or pool its nodes first")
        if adjacency is not None:
            adjacency = np.asarray(adjacency, dtype=np.float32)
            if adjacency.shape != (nodes, nodes):
                raise SpaceError(f"gcn: adjacency of shape {adjacency.shape} does not match {nodes} nodes of the "
                                 f"input shape {self.input_shape}")
        self.adjacency = adjacency
        #: True/False: the dataset's task, which decides the readouts offered; None (costing without
        #: data): every readout
        self.node_task = node_task

    def _decisions_for_input(self) -> list[Decision]:
        return [
            Decision("layers", LAYERS),
            Decision("hidden", HIDDEN),
            Decision("normalization", NORMALIZATIONS),
            Decision("self_loops", SELF_LOOPS),
            Decision("residual", RESIDUALS),
            Decision("readout", READOUTS if self.node_task is None else
                     NODE_READOUTS if self.node_task else GRAPH_READOUTS),
        ]

    def validate(self, arch: Arch) -> None:
        readout = arch.get("readout")
        if self.node_task is not None and readout in READOUTS:
            offered = NODE_READOUTS if self.node_task else GRAPH_READOUTS
            if readout not in offered:
                task, why = (("a node task", "pooling over the nodes loses which node was asked about")
                             if self.node_task else ("a graph task", "it has no marked node to read"))
                raise SpaceError(f"gcn arch: readout {readout!r} does not fit {task} ({why}); "
                                 f"use one of {list(offered)}")
        super().validate(arch)

    def canonical(self, arch: Arch) -> Arch:
        """One layer has no residual (its input width is the feature count, not ``hidden``)."""
        if int(arch["layers"]) == 1 and arch["residual"]:
            return Arch.from_dict(self.name, {**arch.as_dict(), "residual": False})
        return arch

    def summary(self, arch: Arch) -> str:
        return (f"{arch['layers']} x GCN @ {arch['hidden']} (A {arch['normalization']}"
                f"{' + I' if arch['self_loops'] else ''}){', residual' if arch['residual'] else ''}, "
                f"{arch['readout']} readout")

    def a_hat(self, arch: Arch) -> np.ndarray | None:
        """The normalized adjacency of ``arch``, or None when the space was built without one (costing only)."""
        if self.adjacency is None:
            return None
        return normalized_adjacency(self.adjacency, normalization=str(arch["normalization"]),
                                    self_loops=bool(arch["self_loops"]))

    # -- the graph ------------------------------------------------------------------
    def _build(self, arch: Arch) -> Graph:
        nodes, features = self.input_shape
        hidden, layers = int(arch["hidden"]), int(arch["layers"])
        residual = bool(arch["residual"]) and layers > 1
        a_hat = self.a_hat(arch)
        b = GraphBuilder(input_shape=self.input_shape, name=f"gcn_{arch.id}")
        readout = str(arch["readout"])
        if readout == "node":  # the converter schedules the marker pick first
            # weight `nodes` on the marker: MUL then MEAN over the nodes gives the marked node's features
            # themselves, not 1/nodes of them (tiny logits the int8 model could not tell apart)
            marker = b.fixed_fully_connected(b.input, units=1, role="select_last",
                                             values=nodes * np.eye(1, features, features - 1, dtype=np.float32))
        x, batched = b.input, True  # batched: (1, N, C); else the converter's batch-less (N, C)
        res = x  # the batched tensor a residual ADD reads
        for layer in range(layers):
            y = b.fully_connected(x, units=hidden)
            if batched:
                y = b.reshape(y, (nodes, hidden), batch_axis=False)
            y = b.transpose(y, perm=(1, 0), batch_axis=False)  # (H, N)
            y = b.fixed_fully_connected(y, units=nodes, activation="relu", role="adjacency", values=a_hat)
            y = b.transpose(y, perm=(1, 0), batch_axis=False)  # (N, H)
            if residual and layer > 0:
                x = res = b.add(res, y)
                batched = True
            else:
                x, batched = y, False
                if residual and layer + 1 < layers:
                    # the converter restores the batch axis right away for the ADD of the next layer;
                    # that layer's FULLY_CONNECTED still reads the batch-less tensor
                    res = b.reshape(y, (1, nodes, hidden))
        if readout == "node":
            x = b.mul(x, marker)
            x = b.mean(x, axes=(1,), keepdims=False)
        elif readout == "flatten":
            x = b.reshape(x, (1, nodes * hidden))
        else:
            if not batched:
                x = b.reshape(x, (1, nodes, hidden))
            x = b.mean(x, axes=(1,), keepdims=False) if readout == "mean" else b.reduce_max(x, axes=(1,))
        x = b.fully_connected(x, units=self.num_classes)
        x = b.softmax(x)
        return b.build(outputs=[x], converter_ordered=True)
