"""An arch is a mapping: the order of its decisions never matters (issue 11, defect 2).

The journal writes archs with sorted keys and the final stage reads them back; a
user's arch file may hold any order. Before the fix, ``SearchSpace.validate``
demanded the space's own order, so ``mcunet`` and ``nanonas`` (whose decision
names are not alphabetical) never finished a run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.space import get_space
from tinynas.space.arch import Arch

CASES = [("mcunet", (28, 28, 1)), ("nanonas", (28, 28, 1)), ("dscnn", (49, 10, 1)), ("nasbench201", (16, 16, 3))]


def _orders(arch: Arch) -> dict[str, Arch]:
    items = list(arch.decisions)
    return {
        "sorted": Arch(space=arch.space, decisions=tuple(sorted(items))),
        "reversed": Arch(space=arch.space, decisions=tuple(reversed(items))),
    }


@pytest.mark.parametrize("name, shape", CASES, ids=[c[0] for c in CASES])
def test_any_key_order_is_the_same_arch(name, shape):
    space = get_space(name, input_shape=shape, num_classes=10)
    rng = np.random.default_rng(5)
    for _ in range(5):
        arch = space.sample(rng)
        for label, other in _orders(arch).items():
            assert other == arch and hash(other) == hash(arch) and other.id == arch.id, label
            space.validate(other)  # no "order differs"
            assert space.encode(other) == space.encode(arch)
            assert space.graph(other).ops == space.graph(arch).ops
            assert space.canonical(other) == space.canonical(arch)
            assert len({arch, other}) == 1


def test_decisions_still_checked_by_name_and_type():
    space = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)
    arch = space.sample(np.random.default_rng(0))
    values = arch.as_dict()
    first = next(iter(values))
    del values[first]
    with pytest.raises(Exception, match=rf"missing \['{first}'\]"):
        space.validate(Arch.from_dict("mcunet", values))
    values = arch.as_dict()
    values["bogus"] = 1
    with pytest.raises(Exception, match=r"unexpected \['bogus'\]"):
        space.validate(Arch.from_dict("mcunet", values))
    with pytest.raises(Exception, match=r"\(48 decisions\): missing \['resolution', .*'s1_b3_kernel'\] and 39 more$"):
        space.validate(Arch.from_dict("mcunet", {"width": values["width"]}))  # a partial file: the list is cut
    doubled = Arch(space="mcunet", decisions=arch.decisions + arch.decisions[:1])
    with pytest.raises(Exception, match="given twice"):
        space.validate(doubled)


@pytest.mark.parametrize("name, shape", [("mcunet", "28,28,1"), ("nanonas", "28,28,1")])
def test_space_build_takes_a_sorted_keys_file(name, shape, tmp_path):
    space = get_space(name, input_shape=tuple(int(v) for v in shape.split(",")), num_classes=10)
    arch = space.sample(np.random.default_rng(2))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch.to_json(), sort_keys=True))
    assert list(json.loads(path.read_text())["decisions"]) != [d.name for d in space.decisions()]
    result = CliRunner().invoke(cli, ["space", "build", str(path), "--input-shape", shape, "--classes", "10",
                                      "--out", str(tmp_path / "m.keras"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id"] == arch.id
