import numpy as np

from tinynas.data.splits import group_split, stratified_split, stratified_subset


def test_stratified_split_is_disjoint_complete_balanced_and_deterministic():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    test, val, train = stratified_split(y, (0.2, 0.1), seed=3)
    all_idx = np.concatenate([test, val, train])
    assert sorted(all_idx.tolist()) == list(range(len(y)))
    assert np.bincount(y[test], minlength=4).tolist() == [20, 10, 6, 4]
    assert np.bincount(y[val], minlength=4).tolist() == [10, 5, 3, 2]
    again = stratified_split(y, (0.2, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((test, val, train), again))
    other = stratified_split(y, (0.2, 0.1), seed=4)
    assert not np.array_equal(test, other[0])


def test_stratified_subset_keeps_proportions():
    y = np.repeat(np.arange(3), [600, 300, 100])
    idx = stratified_subset(y, 100, seed=0)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert np.bincount(y[idx]).tolist() == [60, 30, 10]
    assert np.array_equal(idx, stratified_subset(y, 100, seed=0))
    assert not np.array_equal(idx, stratified_subset(y, 100, seed=1))
    assert len(stratified_subset(y, 5000, seed=0)) == 1000
    # uneven shares are filled by largest remainder and still sum to n
    assert len(stratified_subset(y, 7, seed=0)) == 7


def test_a_dataset_too_small_to_split_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """4 samples leave validation and test empty: a run used to search and train, then fail in deploy on a
    mean of nothing (a traceback); train printed 'val acc nan'. Each command now says so at once."""
    import pytest
    from click.testing import CliRunner

    from tinynas.cli.main import cli, main
    from tinynas.data import load_dataset
    from tinynas.errors import DatasetError

    data = tmp_path / "tiny.csv"
    data.write_text("a,b,c,d,label\n1,2,3,4,x\n3,4,5,6,y\n1,2,2,1,x\n5,5,5,5,y\n")
    tiny = load_dataset(data, seed=0)
    message = "tiny.csv: 4 samples split into 4 train / 0 validation / 0 test; a search needs validation and test"
    with pytest.raises(DatasetError, match=message):
        tiny.require_splits("val", "test", needed_for="a search")
    tiny.require_splits("train", needed_for="training")  # what the split has passes

    for args in (["run", "--profile", "nano33ble"], ["search", "--profile", "nano33ble"],
                 ["sweep", "--profiles", "nano33ble,nucleo-l432kc"]):
        out = tmp_path / args[0]
        monkeypatch.setattr("sys.argv", ["tinynas", *args, "--dataset", str(data), "--out", str(out)])
        with pytest.raises(SystemExit) as exc:
            main()
        err = capsys.readouterr().err
        assert exc.value.code == 1 and "needs validation and test samples" in err and "Traceback" not in err
        assert not out.exists()
    arch = tmp_path / "arch.json"
    arch.write_text(CliRunner().invoke(cli, ["space", "sample", "--space", "dscnn", "--input-shape", "4,1",
                                             "--classes", "2", "--n", "1", "--json"]).output)
    res = CliRunner().invoke(cli, ["train", str(arch), "--dataset", str(data), "--out", str(tmp_path / "m.keras")])
    assert isinstance(res.exception, DatasetError) and "training (validation" in str(res.exception)
    assert not (tmp_path / "m.keras").exists()
    res = CliRunner().invoke(cli, ["deploy", str(tmp_path / "m.keras"), "--profile", "nano33ble", "--dataset",
                                   str(data), "--out", str(tmp_path / "deployed")])
    assert isinstance(res.exception, DatasetError) and "deploy (it measures" in str(res.exception)
    assert not (tmp_path / "deployed").exists()


def test_group_split_gives_every_part_each_class_when_groups_hold_one_class():
    """A session per activity: drawn by size alone, the test split of seed 0 held one activity,
    and its accuracy said nothing about the others."""
    groups = np.repeat([f"s{i}" for i in range(12)], 40)
    y = np.repeat(np.arange(12) % 3, 40)
    for seed in range(5):
        parts = group_split(groups, (0.15, 0.15), y=y, seed=seed)
        assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
        owners = [set(groups[p]) for p in parts]
        assert not any(owners[i] & owners[j] for i in range(3) for j in range(i + 1, 3))  # groups stay whole
        for part in parts:
            assert np.bincount(y[part], minlength=3).min() > 0
        assert len(parts[2]) >= len(y) // 2  # training keeps most
    assert [p.tolist() for p in group_split(groups, (0.15, 0.15), y=y, seed=1)] == \
        [p.tolist() for p in group_split(groups, (0.15, 0.15), y=y, seed=1)]


def test_group_split_of_subjects_with_every_class_keeps_the_fractions():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"p{i}" for i in range(30)], 60)
    y = rng.integers(0, 4, size=len(groups))
    test, val, train = group_split(groups, (0.2, 0.1), y=y, seed=2)
    assert abs(len(test) / len(y) - 0.2) < 0.04 and abs(len(val) / len(y) - 0.1) < 0.04
    for part, share in ((test, 0.2), (val, 0.1), (train, 0.7)):
        per_class = np.bincount(y[part], minlength=4) / np.bincount(y, minlength=4)
        assert np.all(np.abs(per_class - share) < 0.06), per_class
    seeded = {frozenset(groups[group_split(groups, (0.2, 0.1), y=y, seed=s)[0]]) for s in range(4)}
    assert len(seeded) > 1  # the seed picks the groups


def test_group_split_with_one_group_of_a_class_keeps_it_for_training():
    groups = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 10 + ["d"] * 10)
    y = np.array([0] * 30 + [1] * 10)  # class 1 lives in group d only
    test, val, train = group_split(groups, (0.2, 0.2), y=y, seed=0)
    assert len(test) and len(val) and set(groups[train]) >= {"d"}
