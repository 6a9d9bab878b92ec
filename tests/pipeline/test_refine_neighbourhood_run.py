"""`tinynas run --strategy staged --refine drnas` whose single top candidate (--final-top-k 1) leaves no
disagreement between top candidates: the refine stage mixes the best arch's blocks around their own choices
instead of skipping (tinynas/pipeline/refine.py, ``neighbour_blocks``), on dscnn (its supernet traces in seconds;
mcunet's neighbourhood: test_refine_run.py's unit tests). A file of its own so that the refine runs can go to
different test workers.
"""

from __future__ import annotations

import json

import pytest
from pipeline_helpers import run_cli
from test_refine_run import FLAGS

from tinynas.space import get_space
from tinynas.space.arch import Arch


@pytest.mark.slow
def test_staged_refine_with_one_top_candidate_mixes_around_it_instead_of_skipping(tmp_path, monkeypatch, capsys):
    """--final-top-k 1: one top candidate agrees with itself on every block, the case that used to skip."""
    out = tmp_path / "run"
    flags = list(FLAGS)
    flags[flags.index("--final-top-k") + 1] = "1"
    code, err = run_cli(monkeypatch, capsys, "run", "--profile", "nano33ble", "--dataset", "digits", "--space",
                        "dscnn", "--strategy", "staged", "--refine", "drnas", *flags, "--out", str(out))
    assert code == 0, err[-3000:]
    done = json.loads((out / "stages" / "refine" / "done.json").read_text())
    assert not done.get("skipped") and done["mix"] == "neighbourhood", done
    assert 1 <= done["mixed_blocks"] == len(done["mixed"]) <= 4 and len(done["options"]) >= 4
    get_space("dscnn", input_shape=(8, 8, 1), num_classes=10).validate(Arch.from_json(done["arch"]))
    assert "the top 1 candidate agrees on every block" in done["notes"][0] and "mixed instead" in done["notes"][0]
    assert "mixed instead its block" in (out / "report.md").read_text()
