"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020) as a tinynas search space.

It exists so tinynas can check its zero-cost proxies and strategies against a
published table (``benchmarks/nasbench201_accuracy.csv``, all 15,625 cells), and
it reads and writes the paper's arch strings (``|nor_conv_3x3~0|+|...``).

Macro skeleton (the paper's): stem 3x3 conv + BN with C channels, three stages
of N cells (C, 2C, 4C) with a ResNet basic block of stride 2 between stages,
then ReLU, global average pooling and a fully connected classifier.

How a cell becomes a Graph (kept honest for the cost model):
- ``nor_conv_kxk`` is ReLU-Conv-BN: a RELU op on the source node (shared by all
  edges leaving that node, mathematically the same as one ReLU per edge) and a
  CONV_2D with ``batch_norm=True`` and no fused activation;
- ``skip_connect`` reuses the source tensor; ``avg_pool_3x3`` is a stride-1 SAME
  AVERAGE_POOL_2D (TFLite excludes padding from the count, as the paper's
  ``count_include_pad=False``); ``none`` drops the edge;
- a node is the sum of its incoming edges (a chain of two-input ADDs); a node
  whose every incoming edge is ``none`` (or comes from such a node) is zero and
  its outgoing edges are dropped; edges whose result never reaches the output
  node are not emitted (the converter prunes dead branches);
- when the output node itself is zero, the cell is ``MUL(input, 0)``: the
  network really computes zeros there and the Graph says so.
- the final BatchNorm of the paper's ``lastact`` (BN + ReLU) is omitted: it is
  not foldable into a preceding conv in every arch and is the identity at
  initialisation.
"""

from __future__ import annotations

from typing import Sequence

from tinynas.errors import SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace, register_space
from tinynas.space.graph import Graph, GraphBuilder

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Edges in the order of the arch string: node 1 <- 0 | node 2 <- 0, 1 | node 3 <- 0, 1, 2.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
EDGE_NAMES: tuple[str, ...] = tuple(f"edge_{dst}_{src}" for dst, src in EDGES)


def parse_arch_string(text: str) -> Arch:
    """The Arch of an original NAS-Bench-201 string such as ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``.

    Raises SpaceError naming what is wrong (an unknown op, a wrong node index, a
    missing node).
    """
    raw = text.strip()
    nodes = raw.split("+")
    if len(nodes) != 3:
        raise SpaceError(
            f"NAS-Bench-201 arch string must have 3 nodes separated by '+', got {len(nodes)} in {raw!r}; "
            "expected e.g. |nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
        )
    values: dict[str, str] = {}
    for dst, node in enumerate(nodes, start=1):
        node = node.strip()
        if not (node.startswith("|") and node.endswith("|")):
            raise SpaceError(f"node {dst} of {raw!r} must be enclosed in '|', got {node!r}")
        entries = [e for e in node[1:-1].split("|")]
        if len(entries) != dst:
            raise SpaceError(f"node {dst} of {raw!r} must have {dst} incoming edges, got {len(entries)}")
        for src, entry in enumerate(entries):
            op, sep, idx = entry.partition("~")
            if not sep or idx != str(src):
                raise SpaceError(f"edge {entry!r} of node {dst} in {raw!r} must read 'op~{src}'")
            if op not in OPS:
                raise SpaceError(f"unknown NAS-Bench-201 op {op!r} in {raw!r}; known: {', '.join(OPS)}")
            values[f"edge_{dst}_{src}"] = op
    return Arch.from_dict(NasBench201Space.name, {name: values[name] for name in EDGE_NAMES})


def arch_string(arch: Arch) -> str:
    """The original NAS-Bench-201 string of ``arch`` (inverse of ``parse_arch_string``)."""
    if arch.space != NasBench201Space.name:
        raise SpaceError(f"arch belongs to space {arch.space!r}, not {NasBench201Space.name!r}")
    parts = []
    for dst in (1, 2, 3):
        parts.append("|" + "|".join(f"{arch[f'edge_{dst}_{src}']}~{src}" for src in range(dst)) + "|")
    return "+".join(parts)


def live_edges(arch: Arch) -> list[tuple[int, int, str]]:
    """The (dst, src, op) edges that carry a non-zero value into the output node 3.

    A node is zero when none of its incoming edges carries anything; an edge
    leaving a zero node, an edge whose op is ``none`` and an edge into a node that
    does not reach node 3 are all dropped. Empty when the cell outputs zeros.
    """
    ops = {(dst, src): str(arch[f"edge_{dst}_{src}"]) for dst, src in EDGES}
    nonzero = {0}
    for dst in (1, 2, 3):
        if any(src in nonzero and ops[(dst, src)] != "none" for src in range(dst)):
            nonzero.add(dst)
    if 3 not in nonzero:
        return []
    reaches = {3}
    for node in (2, 1):
        if any(ops[(dst, node)] != "none" and dst in reaches and node in nonzero for dst in range(node + 1, 4)):
            reaches.add(node)
    return [
        (dst, src, ops[(dst, src)]) for dst, src in EDGES
        if ops[(dst, src)] != "none" and src in nonzero and src in reaches | {0} and dst in reaches
    ]


@register_space
class NasBench201Space(SearchSpace):
    """NAS-Bench-201: 6 edges x 5 ops = 15,625 cells in the paper's ResNet-like skeleton."""

    name = "nasbench201"
    default_input_shape = (32, 32, 3)
    description = (
        "NAS-Bench-201 cell space (Dong & Yang 2020): 6 edges, ops none/skip/conv1x1/conv3x3/avgpool3x3; "
        "stem, 3 stages of N cells with residual reductions; trained accuracy published for every cell"
    )
    summary_legend = ("NAS-Bench-201's cell string: one |op~i| per edge into a node from node i, nodes "
                      "separated by +")

    def __init__(
        self, *, input_shape: Sequence[int], num_classes: int, cells_per_stage: int = 5, base_channels: int = 16
    ) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        if len(self.input_shape) != 3:
            raise SpaceError(f"nasbench201 needs an image input H,W,C, got {self.input_shape}")
        if cells_per_stage < 1 or base_channels < 1:
            raise SpaceError(
                f"nasbench201 cells_per_stage and base_channels must be >= 1, got {cells_per_stage}, {base_channels}"
            )
        self.cells_per_stage = int(cells_per_stage)
        self.base_channels = int(base_channels)

    def _decisions_for_input(self) -> list[Decision]:
        return [Decision(name, OPS) for name in EDGE_NAMES]

    def summary(self, arch: Arch) -> str:
        """The paper's arch string: what NAS-Bench-201 users recognise."""
        return arch_string(arch)

    def from_string(self, text: str) -> Arch:
        """``parse_arch_string`` checked against this space."""
        arch = parse_arch_string(text)
        self.validate(arch)
        return arch

    def _build(self, arch: Arch) -> Graph:
        edges = live_edges(arch)
        c = self.base_channels
        b = GraphBuilder(input_shape=self.input_shape, name=f"nasbench201_{arch.id}")
        x = b.conv2d(b.input, filters=c, kernel=3, activation=None, batch_norm=True)
        for stage in range(3):
            width = c * 2**stage
            if stage > 0:
                x = self._reduction(b, x, width)
            for _ in range(self.cells_per_stage):
                x = self._cell(b, x, edges, width)
        x = b.relu(x)
        x = b.global_avg_pool(x)
        x = b.fully_connected(x, units=self.num_classes)
        return b.build(outputs=[b.softmax(x)])

    @staticmethod
    def _reduction(b: GraphBuilder, x: str, width: int) -> str:
        # ResNet basic block of NAS-Bench-201: ReLUConvBN(3x3, s2) -> ReLUConvBN(3x3) + AvgPool(2)->Conv1x1.
        y = b.conv2d(b.relu(x), filters=width, kernel=3, stride=2, activation=None, batch_norm=True)
        y = b.conv2d(b.relu(y), filters=width, kernel=3, activation=None, batch_norm=True)
        s = b.pool2d(x, kind="avg", pool=2, stride=2, padding="valid")
        s = b.conv2d(s, filters=width, kernel=1, activation=None, batch_norm=False)
        return b.add(y, s)

    @staticmethod
    def _cell(b: GraphBuilder, x: str, edges: list[tuple[int, int, str]], width: int) -> str:
        if not edges:
            return b.scale(x, factor=0.0)
        nodes: dict[int, str] = {0: x}
        relus: dict[int, str] = {}
        for dst in (1, 2, 3):
            terms = []
            for e_dst, src, op in edges:
                if e_dst != dst:
                    continue
                h = nodes[src]
                if op == "skip_connect":
                    terms.append(h)
                elif op == "avg_pool_3x3":
                    terms.append(b.pool2d(h, kind="avg", pool=3, stride=1, padding="same"))
                else:
                    if src not in relus:
                        relus[src] = b.relu(h)
                    k = 1 if op == "nor_conv_1x1" else 3
                    terms.append(b.conv2d(relus[src], filters=width, kernel=k, activation=None, batch_norm=True))
            if not terms:
                continue
            total = terms[0]
            for t in terms[1:]:
                total = b.add(total, t)
            nodes[dst] = total
        return nodes[3]
