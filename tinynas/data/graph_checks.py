"""Checks for the fixed graph of a graph dataset: the adjacency every sample's node features live on.

A graph dataset stores samples as (N, nodes, features) plus one (nodes, nodes)
adjacency; the gcn space bakes that adjacency into the model as a constant, so a
bad one must be refused when the data loads, naming the file and the field.
"""

from __future__ import annotations

import numpy as np

from tinynas.errors import DatasetError


def checked_adjacency(adjacency: np.ndarray, *, where: str, field: str = "adjacency", nodes: int | None = None) -> np.ndarray:
    """``adjacency`` as float32 (nodes, nodes) with finite, non-negative weights and at least one edge.

    ``nodes`` is the node count of the samples (axis 1 of x); raises DatasetError
    naming ``where`` and ``field`` with the fix when the matrix cannot be used.
    """
    a = np.asarray(adjacency)
    if a.dtype.kind not in "iufb":
        raise DatasetError(f"{where}: {field} must be a numeric (nodes, nodes) matrix, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise DatasetError(f"{where}: {field} must be a square (nodes, nodes) matrix, got shape {a.shape}; "
                           "store one row and one column per node")
    if nodes is not None and a.shape[0] != nodes:
        raise DatasetError(f"{where}: {field} has {a.shape[0]} nodes but the samples have {nodes} "
                           f"(x is (N, nodes, features)); give x one row per node of the {field}")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise DatasetError(f"{where}: {field} contains NaN or infinite weights; use 0 for no edge")
    if np.any(a < 0):
        raise DatasetError(f"{where}: {field} has negative weights (min {float(a.min()):g}); "
                           "edge weights must be >= 0 (0 = no edge) for A to be normalized")
    off = a.copy()
    np.fill_diagonal(off, 0.0)
    if not np.any(off):
        raise DatasetError(f"{where}: {field} has no edge between two different nodes; a graph network "
                           "on it would see each node alone (use a sequence or tabular dataset instead)")
    return np.ascontiguousarray(a)


def check_node_marker(x: np.ndarray, *, where: str, field: str = "x") -> None:
    """A node task's samples mark the node they ask about with a 1 in the last feature, 0 elsewhere:
    the gcn ``node`` readout reads that marker, so data without one is refused here."""
    marker = np.asarray(x)[..., -1]
    ok = np.isin(marker, (0.0, 1.0)).all(axis=-1) & (marker.sum(axis=-1) == 1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise DatasetError(
            f"{where}: {field}[{bad}]: a node task's last feature must mark the node asked about (one 1, zeros "
            "elsewhere); add that marker column to x, or drop node_task for a graph task"
        )
