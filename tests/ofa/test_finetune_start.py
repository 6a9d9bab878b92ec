"""``shrink_perturb``: the start of an ofa final candidate's fine-tune, between its inherited weights and a
fresh initialisation of the same graph (``--strategy-option finetune_keep``)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def subnet():
    from tinynas.data.base import load_dataset
    from tinynas.ofa.evaluate import SubnetEvaluator
    from tinynas.ofa.plan import largest_archs
    from tinynas.ofa.supernet import ElasticMCUNet
    from tinynas.space import get_space

    ds = load_dataset("digits", seed=0)
    space = get_space("mcunet", input_shape=ds.input_shape, num_classes=ds.num_classes)
    net = ElasticMCUNet(space=space, max_width=0.15, seed=0)
    arch = largest_archs(space, max_width=0.15)[0].replace(resolution=int(ds.input_shape[0]))
    _, _, stats = SubnetEvaluator(supernet=net, dataset=ds, spec=None).inherited(arch)
    return net, space, arch, stats


def _pair(subnet, seed=3):
    from tinynas.space.keras_builder import build_keras_model

    net, space, arch, stats = subnet
    return net.extract(arch, stats), build_keras_model(space.graph(arch), seed=seed)


def test_kernels_are_blended_and_batchnorm_is_kept(subnet):
    from tinynas.ofa.evaluate import shrink_perturb

    model, fresh = _pair(subnet)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    shrink_perturb(model, fresh, keep=0.3)
    kernels = 0
    for layer, new in zip(model.layers, fresh.layers):
        old = before[layer.name]
        for got, was, other in zip(layer.get_weights(), old, new.get_weights()):
            if layer.__class__.__name__ == "BatchNormalization":
                np.testing.assert_array_equal(got, was)  # inherited statistics and affine parameters
            else:
                np.testing.assert_allclose(got, 0.3 * was + 0.7 * other, rtol=1e-5, atol=1e-7)
                kernels += 1
    assert kernels > 10


def test_keep_one_changes_nothing_and_zero_is_the_fresh_start(subnet):
    from tinynas.ofa.evaluate import shrink_perturb

    model, fresh = _pair(subnet)
    before = [w.copy() for w in model.get_weights()]
    shrink_perturb(model, fresh, keep=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    shrink_perturb(model, fresh, keep=0.0)
    conv = next(layer for layer in model.layers if layer.name.startswith("conv_2d"))
    np.testing.assert_array_equal(conv.get_weights()[0], fresh.get_layer(conv.name).get_weights()[0])


def test_a_keep_outside_0_to_1_or_another_graph_is_refused(subnet):
    from tinynas.errors import SearchError
    from tinynas.ofa.evaluate import shrink_perturb
    from tinynas.space.keras_builder import build_keras_model
    from tinynas.strategies import make_strategy

    _, space, arch, _ = subnet
    model, fresh = _pair(subnet)
    with pytest.raises(ValueError, match="keep must be within 0..1"):
        shrink_perturb(model, fresh, keep=1.2)
    other = build_keras_model(space.graph(space.canonical(arch.replace(s5_depth=1))), seed=0)
    with pytest.raises(ValueError, match="not the same graph"):
        shrink_perturb(model, other, keep=0.5)
    with pytest.raises(SearchError, match="finetune_keep must be within 0..1"):
        make_strategy("ofa", space=space, finetune_keep=-0.1)


def test_a_final_fine_tune_is_cached_per_subnet_supernet_and_start(subnet, tmp_path):
    """Boards of a sweep that pick the same winner fine-tune it once; another start is another training."""
    from types import SimpleNamespace

    from tinynas.data.base import load_dataset
    from tinynas.ofa.evaluate import SubnetEvaluator
    from tinynas.pipeline.evaluate import EvalJob
    from tinynas.train import TrainBudget

    net, _, arch, _ = subnet
    ds = load_dataset("digits", seed=0)
    spec = SimpleNamespace(cache_dir=str(tmp_path / "cache"))
    budget = TrainBudget(epochs=1, max_train_samples=128)

    def final(keep, name, key="supernet-a"):
        evaluator = SubnetEvaluator(supernet=net, dataset=ds, spec=spec, recalibration_samples=64, finetune_keep=keep,
                                    supernet_key=key)
        job = EvalJob(arch=arch, budget=budget, seed=1, fidelity="final", model_path=str(tmp_path / f"{name}.keras"))
        return evaluator.submit(job).result()

    first, again = final(0.5, "a"), final(0.5, "b")
    assert first["cached"] is False and again["cached"] is True
    assert again["accuracy"] == first["accuracy"] and (tmp_path / "b.keras").read_bytes() == \
        (tmp_path / "a.keras").read_bytes()
    assert again["inherited_accuracy"] == first["inherited_accuracy"] and again["finetune_keep"] == 0.5
    assert final(1.0, "c")["cached"] is False  # another start
    assert final(0.5, "d", key="supernet-b")["cached"] is False  # another supernet's weights
    (tmp_path / "cache" / "models").rename(tmp_path / "gone")  # the outcome without its weights: train again
    assert final(0.5, "e")["cached"] is False and (tmp_path / "e.keras").is_file()
