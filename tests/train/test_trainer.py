"""Real training on tiny data: digits, mnist1d, resized inputs, the cache, bad shapes."""

import numpy as np
import pytest

from tinynas.data import load_dataset
from tinynas.errors import TrainError
from tinynas.space.base import get_space
from tinynas.train import TrainBudget, TrainCache, train_graph
from tinynas.train import trainer as trainer_module


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.slow
def test_digits_trains_well_above_chance_and_caches(digits, small_cnn, tmp_path, monkeypatch):
    budget = TrainBudget(epochs=4, max_train_samples=600, batch_size=32)
    cache = TrainCache(tmp_path / "cache")
    r = train_graph(small_cnn(), digits, budget=budget, seed=0, cache=cache, arch_id="small")
    assert r.val_accuracy > 0.5 and r.test_accuracy is not None and r.test_accuracy > 0.5  # chance is 0.1
    assert r.train_samples == 600 and r.epochs_run == 4 and not r.cached
    assert set(r.history) == {"loss", "accuracy", "val_loss", "val_accuracy"} and len(r.history["loss"]) == 4
    assert r.model is None and r.params > 0
    assert len(cache) == 1

    # A second call must not train at all: make training impossible and ask again.
    def no_training(*args, **kwargs):
        raise AssertionError("trained although the result was cached")

    monkeypatch.setattr(trainer_module, "_train", no_training)
    again = train_graph(small_cnn(), digits, budget=budget, seed=0, cache_dir=tmp_path / "cache", arch_id="small")
    assert again.cached and again.val_accuracy == r.val_accuracy and again.key == r.key
    assert again.train_seconds == r.train_seconds  # the stored figure, no new training time
    # another seed is another result: it would have to train
    with pytest.raises(AssertionError, match="trained although"):
        train_graph(small_cnn(), digits, budget=budget, seed=1, cache=cache, arch_id="small")


@pytest.mark.slow
def test_early_stopping_return_model_and_save(digits, small_cnn, tmp_path):
    import keras

    budget = TrainBudget(epochs=30, max_train_samples=300, batch_size=32, early_stopping_patience=1,
                         learning_rate=0.05, evaluate_test=False)
    out = tmp_path / "m" / "model.keras"
    r = train_graph(small_cnn(filters=8), digits, budget=budget, seed=3, return_model=True, save_path=out)
    assert r.epochs_run < 30 and r.test_accuracy is None
    assert isinstance(r.model, keras.Model) and out.is_file() and r.weights_path == str(out)
    pred = r.model.predict(digits.x_val[:4], verbose=0)
    assert pred.shape == (4, 10) and np.allclose(pred.sum(axis=1), 1.0, atol=1e-4)
    with pytest.raises(TrainError, match="saved as a .keras file"):
        train_graph(small_cnn(), digits, budget=budget, seed=0, save_path=tmp_path / "model.h5")


@pytest.mark.slow
def test_train_keras_model_directly(digits, small_cnn, tmp_path):
    from tinynas.space.keras_builder import build_keras_model
    from tinynas.train import train_keras_model

    model = build_keras_model(small_cnn(), seed=0)
    cache = TrainCache(tmp_path)
    budget = TrainBudget(epochs=4, max_train_samples=600, batch_size=32)
    r = train_keras_model(model, digits, budget=budget, seed=0, arch_id="k1", cache=cache)
    assert r.model is model and r.val_accuracy > 0.4 and len(cache) == 1
    assert train_keras_model(model, digits, budget=budget, seed=0, arch_id="k1", cache=cache).cached


@pytest.mark.slow
def test_graph_at_another_resolution_gets_resized_inputs(digits, small_cnn):
    r = train_graph(small_cnn(input_shape=(12, 12, 1)), digits,
                    budget=TrainBudget(epochs=2, max_train_samples=300, evaluate_test=False), seed=0)
    assert r.epochs_run == 2 and np.isfinite(r.val_loss)
    from tinynas.train.inputs import fit_inputs

    x = fit_inputs(digits.x_val, (12, 12, 1), dataset="digits", fingerprint=digits.fingerprint, split="val")
    assert x.shape == (len(digits.x_val), 12, 12, 1)
    assert x is fit_inputs(digits.x_val, (12, 12, 1), dataset="digits", fingerprint=digits.fingerprint, split="val")


def test_same_seed_gives_the_same_training(digits, small_cnn):
    budget = TrainBudget(epochs=1, max_train_samples=200, batch_size=32, evaluate_test=False)
    a, b = (train_graph(small_cnn(filters=8), digits, budget=budget, seed=4) for _ in range(2))
    assert a.history == b.history and a.val_loss == b.val_loss and a.key == b.key


def test_a_short_training_runs_untraced_and_a_longer_one_traced(digits, small_cnn, monkeypatch):
    """Tracing costs more than a few steps run op by op (scripts/bench_train_loop.py); both learn alike."""
    from tinynas.train import loop as loop_module

    loops = []
    original = loop_module.KerasTrainLoop.fit

    def fit(self, *args, **kwargs):
        loops.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(loop_module.KerasTrainLoop, "fit", fit)
    short = TrainBudget(epochs=1, max_train_samples=128, batch_size=32, evaluate_test=False)  # 4 steps + 1
    long = TrainBudget(epochs=3, max_train_samples=512, batch_size=32, evaluate_test=False)  # 48 steps + 2
    results = [train_graph(small_cnn(filters=8), digits, budget=budget, seed=4) for budget in (short, long)]
    assert [loop.eager for loop in loops] == [True, False]
    assert loops[0]._traced_step.experimental_get_tracing_count() == 0
    assert loops[1]._traced_step.experimental_get_tracing_count() == 1
    monkeypatch.setattr(loop_module, "EAGER_MAX_STEPS", 0)  # the short training, traced: the same maths
    traced = train_graph(small_cnn(filters=8), digits, budget=short, seed=4)
    assert loops[2].eager is False
    assert traced.val_accuracy == pytest.approx(results[0].val_accuracy, abs=0.02)
    assert traced.history["loss"] == pytest.approx(results[0].history["loss"], rel=1e-3)


@pytest.mark.slow
def test_mcunet_on_mnist1d_sequences():
    ds = load_dataset("mnist1d")
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    arch = space.decode([0] * len(space.decisions()))
    budget = TrainBudget(epochs=4, max_train_samples=1000, batch_size=32, evaluate_test=False)
    r = train_graph(space.graph(arch), ds, budget=budget, seed=0, arch_id=arch.id)
    assert r.arch_id == arch.id and r.train_samples == 1000 and r.val_accuracy > 0.2  # chance is 0.1


def test_mismatched_shapes_and_classes_are_clear_errors(digits, small_cnn):
    with pytest.raises(TrainError, match=r"model input \(8, 8, 3\) has 3 channels but dataset 'digits' gives \(8, 8, 1\)"):
        train_graph(small_cnn(input_shape=(8, 8, 3)), digits, budget=TrainBudget(epochs=1), seed=0)
    seq = load_dataset("synthetic-seq", length=16, channels=2, num_classes=10, num_samples=100)
    with pytest.raises(TrainError, match=r"model input shape \(8, 8, 1\) does not match dataset 'synthetic-seq' "
                                         r"samples of shape \(16, 2\)"):
        train_graph(small_cnn(), seq, budget=TrainBudget(epochs=1), seed=0)
    with pytest.raises(TrainError, match="model output has 4 classes but dataset 'digits' has 10"):
        train_graph(small_cnn(num_classes=4), digits, budget=TrainBudget(epochs=1), seed=0)
