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
