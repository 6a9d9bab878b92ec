import numpy as np

from tinynas.data.splits import stratified_split, stratified_subset


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
