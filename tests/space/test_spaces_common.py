"""The suite every space in this folder passes (mcunet, nanonas, dscnn, tinyformer) on the
input shapes they take: digits 8x8x1, CIFAR-like 32x32x3, MFCC 49x10x1, mnist1d 40x1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinynas.errors import SpaceError
from tinynas.space import Arch, get_space, space_names

CASES = [
    (name, shape)
    for name in ("mcunet", "nanonas", "dscnn", "tinyformer")
    for shape in ((8, 8, 1), (32, 32, 3), (49, 10, 1), (40, 1))
]


@pytest.fixture(params=CASES, ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[1]))}")
def space(request):
    name, shape = request.param
    return get_space(name, input_shape=shape, num_classes=7)


def test_registered():
    assert {"mcunet", "nanonas", "dscnn", "tinyformer"} <= set(space_names())


def test_decisions_enumerate(space):
    decisions = space.decisions()
    names = [d.name for d in decisions]
    assert len(names) == len(set(names)) > 0
    for d in decisions:
        assert len(d.options) >= 1
        assert len(set(d.options)) == len(d.options)
        json.dumps(d.to_json())
    assert space.size() >= 2
    info = space.describe()
    assert info["name"] == space.name and len(info["decisions"]) == len(decisions)


def test_sampled_archs_round_trip_validate_and_build(space, check_graph):
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(25)]
    assert len({a.id for a in archs}) > 1, "sampling explores the space"
    for arch in archs:
        assert arch.space == space.name
        space.validate(arch)
        assert space.contains(arch)
        back = Arch.from_json(json.loads(json.dumps(arch.to_json())))
        assert back == arch and back.id == arch.id and hash(back) == hash(arch)
        assert space.decode(space.encode(arch)) == arch
        graph = space.graph(arch)
        check_graph(graph, num_classes=7)
        assert graph.input_shape[-1] == space.input_shape[-1]
        assert space.ops_in_every_arch <= set(graph.op_kinds()), "run refuses templates on this promise"


def test_sampling_is_seeded(space):
    a = [space.sample(np.random.default_rng(3)).id for _ in range(3)]
    b = [space.sample(np.random.default_rng(3)).id for _ in range(3)]
    assert a == b


def test_mutate_stays_inside_and_changes(space):
    rng = np.random.default_rng(1)
    arch = space.sample(rng)
    for _ in range(30):
        child = space.mutate(arch, rng)
        assert space.contains(child)
        if space.size() > 1:
            assert child != arch
        two = space.mutate(arch, rng, n_changes=2)
        assert space.contains(two)
        arch = child


def test_decode_every_first_and_last_option(space, check_graph):
    decisions = space.decisions()
    for pick in (0, -1):
        arch = space.decode([pick % len(d.options) for d in decisions])
        space.validate(arch)
        check_graph(space.graph(arch), num_classes=7)


def test_rejects_arch_of_other_space_and_bad_values(space):
    other = "dscnn" if space.name != "dscnn" else "nanonas"
    foreign = Arch.from_dict(other, {"x": 1})
    with pytest.raises(SpaceError, match=space.name):
        space.validate(foreign)
    arch = space.sample(np.random.default_rng(2))
    d = space.decisions()[0]
    bad = arch.replace(**{d.name: "not-an-option"})
    assert not space.contains(bad)
    with pytest.raises(SpaceError, match=d.name):
        space.graph(bad)
    with pytest.raises(SpaceError, match="decisions"):
        space.decode([0])


def test_unknown_space_lists_known_ones():
    with pytest.raises(SpaceError) as err:
        get_space("mobilenetv9", input_shape=(32, 32, 3), num_classes=10)
    message = str(err.value)
    assert "mobilenetv9" in message
    for name in ("mcunet", "nanonas", "dscnn"):
        assert name in message


@pytest.mark.parametrize("name", ["mcunet", "nanonas", "dscnn", "tinyformer"])
@pytest.mark.parametrize("shape", [(32, 32, 3, 1), (0, 10, 1), (5,)])
def test_malformed_input_shape_is_a_space_error(name, shape):
    with pytest.raises(SpaceError, match="input shape"):
        get_space(name, input_shape=shape, num_classes=10)


@pytest.mark.parametrize("name", ["mcunet", "nanonas", "dscnn", "tinyformer"])
def test_one_class_is_a_space_error(name):
    with pytest.raises(SpaceError, match="2 classes"):
        get_space(name, input_shape=(32, 32, 3), num_classes=1)
