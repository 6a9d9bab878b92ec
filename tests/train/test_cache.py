import json


from tinynas.train import TrainBudget, TrainCache, TrainResult, cache_key, graph_signature


def _result(key: str) -> TrainResult:
    return TrainResult(val_accuracy=0.9, val_loss=0.3, train_accuracy=0.95, test_accuracy=0.88, test_loss=0.4,
                       train_seconds=2.0, epochs_run=2, train_samples=100, params=500, history={"loss": [1.0, 0.5]},
                       budget=TrainBudget(epochs=2), seed=0, arch_id="a1", dataset_fingerprint="d" * 40, key=key)


def test_key_depends_on_every_part():
    base = dict(model_id="a1", dataset_fingerprint="d" * 40, budget=TrainBudget(epochs=2), seed=0)
    k = cache_key(**base)
    assert k == cache_key(**base)
    for change in ({"model_id": "a2"}, {"dataset_fingerprint": "e" * 40}, {"budget": TrainBudget(epochs=3)},
                   {"seed": 1}):
        assert cache_key(**{**base, **change}) != k


def test_graph_signature_is_stable_and_distinguishes_graphs(small_cnn):
    assert graph_signature(small_cnn()) == graph_signature(small_cnn())
    assert graph_signature(small_cnn()) != graph_signature(small_cnn(filters=8))
    assert graph_signature(small_cnn()) != graph_signature(small_cnn(input_shape=(12, 12, 1)))


def test_put_get_and_bad_entries(tmp_path):
    cache = TrainCache(tmp_path / "cache")
    key = "ab" + "0" * 38
    assert cache.get(key) is None and key not in cache
    cache.put(key, _result(key))
    hit = cache.get(key)
    assert hit is not None and hit.cached and hit.val_accuracy == 0.9 and key in cache and len(cache) == 1
    cache.put(key, _result(key))  # a second writer replaces the file whole
    assert len(cache) == 1 and not list((tmp_path / "cache").rglob("*.tmp"))
    path = next((tmp_path / "cache").rglob("*.json"))
    assert json.loads(path.read_text())["cached"] is False
    path.write_text("{ half a fi")
    assert cache.get(key) is None  # unreadable entries are a miss, not a crash
    path.write_text(json.dumps({"val_accuracy": 1}))
    assert cache.get(key) is None
