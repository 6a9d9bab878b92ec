"""Graph datasets: the built-in digits-grid and karate-club, the .npz graph format and its bad inputs."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.data import load_dataset
from tinynas.data.graphs import grid_adjacency
from tinynas.errors import DatasetError


def test_digits_grid_is_a_signal_on_the_8x8_grid():
    ds = load_dataset("digits-grid")
    assert ds.is_graph and ds.input_shape == (64, 3) and ds.num_classes == 10
    a = ds.adjacency
    assert a.shape == (64, 64) and np.array_equal(a, a.T)
    assert a[0, 1] == 1 and a[0, 8] == 1 and a[0, 9] == 0 and a[7, 8] == 0  # 4-neighbour, no wrap-around
    assert sorted(set(a.sum(axis=1).astype(int).tolist())) == [2, 3, 4]
    # node 0's ink equals pixel (0, 0) of the plain digits images
    plain = load_dataset("digits")
    assert np.allclose(ds.x_train[:, :, 0].reshape(-1, 8, 8), plain.x_train[..., 0])
    assert not ds.node_task
    assert ds.structure_json() == {"kind": "graph", "task": "graph", "nodes": 64, "edges": 112, "directed": False, "self_loops": 0,
                                   "degree_range": [2, 4], "node_features": 3}


def test_karate_club_is_one_sample_per_node_with_a_query_marker():
    ds = load_dataset("karate-club")
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert x.shape == (34, 34, 35) and ds.num_classes == 2
    assert np.all(x[:, :, -1].sum(axis=1) == 1)  # exactly one node asked about per sample
    assert sorted(x[:, :, -1].argmax(axis=1).tolist()) == list(range(34))
    assert int(ds.adjacency.sum()) == 2 * 78
    assert ds.node_task and ds.structure_json()["task"] == "node"
    rw = load_dataset("karate-club", features="random-walk", walk_steps=3)
    assert rw.input_shape == (34, 1 + 3 + 1) and rw.fingerprint != ds.fingerprint
    with pytest.raises(DatasetError, match="features must be 'onehot' or 'random-walk'"):
        load_dataset("karate-club", features="spectral")


def _graph_npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = dict(adjacency=grid_adjacency(3, 3), x=rng.normal(size=(40, 9, 2)).astype(np.float32),
                y=np.arange(40) % 2)
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_npz_graph_loads_and_fingerprints_the_adjacency(tmp_path):
    ds = load_dataset(_graph_npz(tmp_path / "g.npz"))
    assert ds.is_graph and ds.input_shape == (9, 2) and ds.adjacency.shape == (9, 9)
    other = load_dataset(_graph_npz(tmp_path / "h.npz", adjacency=grid_adjacency(3, 3) * 2))
    assert other.fingerprint != ds.fingerprint
    flat = load_dataset(_graph_npz(tmp_path / "f.npz", x=np.ones((40, 9)), y=np.arange(40) % 2))
    assert flat.input_shape == (9, 1)
    assert not ds.node_task


def test_npz_node_task_needs_a_marker_in_the_last_feature(tmp_path):
    x = np.zeros((40, 9, 3), np.float32)
    x[np.arange(40), np.arange(40) % 9, -1] = 1.0  # sample i asks about node i % 9
    ds = load_dataset(_graph_npz(tmp_path / "n.npz", x=x, node_task=True))
    assert ds.node_task and ds.structure_json()["task"] == "node"
    assert ds.fingerprint != load_dataset(_graph_npz(tmp_path / "g.npz", x=x)).fingerprint
    x[3, :, -1] = 0.0
    with pytest.raises(DatasetError, match=r"m.npz: x\[3\]: a node task's last feature must mark the node"):
        load_dataset(_graph_npz(tmp_path / "m.npz", x=x, node_task=True))
    with pytest.raises(DatasetError, match=r"s.npz: node_task needs an adjacency array"):
        load_dataset(_graph_npz(tmp_path / "s.npz", x=x, adjacency=None, node_task=True))


@pytest.mark.parametrize("arrays, message", [
    (dict(adjacency=np.ones((9, 8))), r"bad.npz: adjacency must be a square \(nodes, nodes\) matrix, got shape \(9, 8\)"),
    (dict(adjacency=grid_adjacency(2, 2)), r"bad.npz: adjacency has 4 nodes but the samples have 9"),
    (dict(adjacency=np.where(np.eye(9) > 0, np.nan, grid_adjacency(3, 3))), r"bad.npz: adjacency contains NaN"),
    (dict(adjacency=-grid_adjacency(3, 3)), r"bad.npz: adjacency has negative weights"),
    (dict(adjacency=np.eye(9)), r"bad.npz: adjacency has no edge between two different nodes"),
    (dict(x=np.ones((40, 3, 3, 9))), r"bad.npz: with an adjacency, x must be \(N, nodes\)"),
    (dict(x_test=np.ones((4, 8, 2)), y_test=np.arange(4) % 2), r"bad.npz: x_test samples have shape \(8, 2\)"),
])
def test_npz_graph_bad_input_names_file_and_field(tmp_path, arrays, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(_graph_npz(tmp_path / "bad.npz", **arrays))


def test_cli_inspect_shows_graph_and_sequence_structure(tmp_path):
    res = CliRunner().invoke(cli, ["datasets", "inspect", "digits-grid"])
    assert res.exit_code == 0, res.output
    assert "graph        64 nodes, 112 edges, degree 2..4, 3 features per node; graph task" in res.output
    res = CliRunner().invoke(cli, ["datasets", "inspect", "synthetic-seq", "-o", "length=20", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["structure"] == {"kind": "sequence", "length": 20, "channels": 3}
    res = CliRunner().invoke(cli, ["datasets", "inspect", str(_graph_npz(tmp_path / "bad.npz", adjacency=np.ones((9, 8))))])
    assert res.exit_code == 1 and "adjacency must be a square" in str(res.exception)
