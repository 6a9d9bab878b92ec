"""Graph datasets from packaged data: signals on a fixed graph, for the ``gcn`` space.

``digits-grid`` is a graph-level task (scikit-learn's digits as a signal on the
8x8 pixel grid, 4-neighbour); ``karate-club`` is a node-level task on Zachary's
karate club as networkx ships it. A node task becomes one sample per node: the
node features of the whole graph plus a channel that marks the node asked about,
so training, int8 conversion and firmware stay per-sample as for every other
dataset (the firmware asks about one node per inference).
"""

from __future__ import annotations

import numpy as np

from tinynas.data.base import RawData, register_dataset
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

_DIGIT_NAMES = tuple(str(i) for i in range(10))


def grid_adjacency(rows: int, cols: int) -> np.ndarray:
    """The 4-neighbour grid graph of ``rows`` x ``cols`` pixels, nodes in row-major order."""
    n = rows * cols
    a = np.zeros((n, n), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if c + 1 < cols:
                a[i, i + 1] = a[i + 1, i] = 1.0
            if r + 1 < rows:
                a[i, i + cols] = a[i + cols, i] = 1.0
    return a


@register_dataset("digits-grid", kind="built-in",
                  description="scikit-learn's digits as a signal on the 8x8 grid graph (4-neighbour): "
                              "graphs of 64 nodes x 3 features (ink, row, column), 10 classes")
def load_digits_grid(*, coordinates: bool = True) -> RawData:
    """Node features: ink 0..16 divided by 16, plus (with ``coordinates``) the node's row and column
    scaled to 0..1, since a GCN with a mean or max readout cannot otherwise tell where ink is."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    ink = bunch.images.astype(np.float32).reshape(len(bunch.images), 64, 1) / 16.0
    x = ink
    if coordinates:
        rr, cc = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
        pos = np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.float32) / 7.0
        x = np.concatenate([ink, np.broadcast_to(pos, (len(ink), 64, 2))], axis=2)
    scaling = InputScaling(scale=1.0 / 16.0, description="node feature 0: pixel ink 0..16 divided by 16"
                           + ("; features 1, 2: row and column / 7" if coordinates else ""))
    return RawData(x=x, y=bunch.target.astype(np.int64), class_names=_DIGIT_NAMES, scaling=scaling,
                   adjacency=grid_adjacency(8, 8),
                   source="sklearn.datasets.load_digits on the 8x8 grid graph (offline, bundled with scikit-learn)")


@register_dataset("karate-club", kind="built-in",
                  description="Zachary's karate club (networkx): node task, which club each of 34 members "
                              "joined; one sample per node, 34 nodes x features + query marker, 2 classes")
def load_karate_club(*, features: str = "onehot", walk_steps: int = 4) -> RawData:
    """``features``: ``onehot`` (node identity, as Kipf & Welling 2017 use on this graph) or
    ``random-walk`` (degree and the return probabilities of 1..``walk_steps`` random-walk steps,
    a structural encoding that does not grow with the node count). The last feature marks the
    node each sample asks about."""
    try:
        import networkx as nx
    except ModuleNotFoundError:
        raise DatasetError("karate-club needs the networkx package: pip install 'networkx>=3.2,<4'") from None
    if features not in ("onehot", "random-walk"):
        raise DatasetError(f"karate-club option features must be 'onehot' or 'random-walk', got {features!r}")
    if not 1 <= walk_steps <= 16:
        raise DatasetError(f"karate-club option walk_steps must be 1..16, got {walk_steps}")
    g = nx.karate_club_graph()
    nodes = sorted(g.nodes)
    n = len(nodes)
    a = np.zeros((n, n), dtype=np.float32)
    for u, v in g.edges:
        a[u, v] = a[v, u] = 1.0
    clubs = tuple(sorted({g.nodes[i]["club"] for i in nodes}))
    y = np.asarray([clubs.index(g.nodes[i]["club"]) for i in nodes], dtype=np.int64)
    degree = a.sum(axis=1)
    if features == "onehot":
        base = np.eye(n, dtype=np.float32)
    else:
        walk = a / degree[:, None]
        cols, step = [degree / degree.max()], np.eye(n, dtype=np.float32)
        for _ in range(walk_steps):
            step = step @ walk
            cols.append(np.diag(step))
        base = np.stack(cols, axis=1).astype(np.float32)
    x = np.zeros((n, n, base.shape[1] + 1), dtype=np.float32)
    x[:, :, :-1] = base
    x[np.arange(n), np.arange(n), -1] = 1.0  # sample i asks about node i
    return RawData(x=x, y=y, class_names=clubs, adjacency=a, node_task=True,
                   scaling=InputScaling(description=f"{features} node features and a 0/1 query-node marker (last)"),
                   source="networkx.karate_club_graph (Zachary 1977; offline, bundled with networkx)")
