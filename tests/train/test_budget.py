import pytest

from tinynas.errors import TrainError
from tinynas.train import TrainBudget, TrainResult


def test_budget_validation_names_the_field():
    with pytest.raises(TrainError, match="epochs must be a positive integer"):
        TrainBudget(epochs=0)
    with pytest.raises(TrainError, match="max_train_samples"):
        TrainBudget(max_train_samples=-5)
    with pytest.raises(TrainError, match="learning_rate must be positive"):
        TrainBudget(learning_rate=0.0)
    with pytest.raises(TrainError, match=r"unknown training budget field\(s\) \['epoch'\]"):
        TrainBudget.from_json({"epoch": 3})


def test_budget_and_result_round_trip():
    b = TrainBudget.low_fidelity(epochs=3, max_train_samples=500)
    assert b.evaluate_test is False
    assert TrainBudget.from_json(b.to_json()) == b
    r = TrainResult(val_accuracy=0.5, val_loss=1.0, train_accuracy=0.6, test_accuracy=None, test_loss=None,
                    train_seconds=1.5, epochs_run=3, train_samples=500, params=1000,
                    history={"loss": [2.0, 1.5, 1.0]}, budget=b, seed=1, arch_id="abc",
                    dataset_fingerprint="f" * 40, key="k" * 40)
    back = TrainResult.from_json(r.to_json())
    assert back == r
    with pytest.raises(TrainError, match="malformed training result"):
        TrainResult.from_json({"val_accuracy": 1})


def test_a_small_training_set_is_passed_over_until_an_epoch_draws_what_it_would_from_a_large_one():
    from tinynas.train.budget import MIN_EPOCH_SAMPLES

    final, search = TrainBudget(epochs=20), TrainBudget.low_fidelity(epochs=3, max_train_samples=1000)
    assert MIN_EPOCH_SAMPLES == 1000
    # UCR ArrowHead: 30 training series; 34 passes make an epoch of 1,020 samples (16 batches of 64)
    assert final.on_train_set(30).epoch_passes == 34 and search.on_train_set(30).epoch_passes == 34
    assert final.on_train_set(1259).epoch_passes == 1 and search.on_train_set(1259).epoch_passes == 1
    assert final.on_train_set(999).epoch_passes == 2
    # a subset asked for is an epoch's size: 64 of digits' 1,259 stay one pass, 64 of 30 take three
    tiny = TrainBudget.low_fidelity(epochs=1, max_train_samples=64)
    assert tiny.on_train_set(1259).epoch_passes == 1 and tiny.on_train_set(30).epoch_passes == 3
    assert TrainBudget.from_json(final.on_train_set(30).to_json()) == final.on_train_set(30)
    with pytest.raises(TrainError, match="epoch_passes must be a positive integer"):
        TrainBudget(epoch_passes=0)


def test_a_budget_that_passes_once_keeps_the_cache_key_it_had_before_passes_existed():
    from tinynas.train import cache_key

    # values computed at 217117a, before TrainBudget had epoch_passes: caches of large datasets stay valid
    assert cache_key(model_id="abc", dataset_fingerprint="f" * 40, budget=TrainBudget().on_train_set(1259),
                     seed=0) == "49a9842b8da368aca0e2439bdb0d4b2d247b9a3e"
    search = TrainBudget.low_fidelity(epochs=3, max_train_samples=1000).on_train_set(1259)
    assert cache_key(model_id="abc", dataset_fingerprint="f" * 40, budget=search,
                     seed=1) == "2aca349fe8437eab29eb6ab6a5ddd7d90847cae0"
    # a budget that passes several times trains otherwise, so it is another result
    assert cache_key(model_id="abc", dataset_fingerprint="f" * 40, budget=TrainBudget().on_train_set(30),
                     seed=0) != "49a9842b8da368aca0e2439bdb0d4b2d247b9a3e"
