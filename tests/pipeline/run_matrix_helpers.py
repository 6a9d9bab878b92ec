"""The `tinynas run` matrix: every search space that takes the input x every registered strategy,
on a tiny budget. Its cells are split over two test files (mcunet's, the slowest, in their own) so
the two pytest workers can share them; ``run_cell`` is what each cell checks.

Issue 11, defect 2: `mcunet` and `nanonas` never finished a run because the final stage
read archs back from the journal with sorted keys and the space demanded its own key
order; unit tests did not catch it because `dscnn`'s names happen to be alphabetical.
The matrix is built from the registries, so a new space or strategy joins it (and has
to finish a run) without anyone editing the tests.
"""

from __future__ import annotations

import json
import sys

import pytest

from tinynas.errors import SpaceError
from tinynas.space import get_space
from tinynas.space.arch import Arch
from tinynas.space.base import space_names
from tinynas.strategies.base import get_strategy, strategy_names

DATASET, INPUT_SHAPE, CLASSES = "digits", (8, 8, 1), 10
# Seconds per cell: two candidates of one epoch on 64 samples; small models (MAC bound) train fast. --no-qat: a
# 1-epoch model often loses a point in int8, and deploy's 20-epoch QAT would then be most of the cell (QAT in `run`:
# test_run_end_to_end.py; QAT on every space's layers: tests/deploy/test_qat.py).
FLAGS = ["--budget-candidates", "2", "--search-epochs", "1", "--search-samples", "64", "--final-epochs", "1",
         "--final-top-k", "1", "--prefilter-candidates", "4", "--no-progress", "--no-qat"]
# A MAC bound keeps the searched models small; NAS-Bench-201's fixed-width cell has none under ~470k MACs.
MAC_BOUND = {"nasbench201": "600k"}
#: a strategy's own cost knobs cut to the matrix's size (ofa's supernet ignores --search-epochs/--search-samples)
#: and the DARTS family's supernet mixes two blocks, not four (its time is tf.function tracing, per branch)
STRATEGY_FLAGS = {"ofa": ["--strategy-option", "steps_per_phase=1", "--strategy-option", "supernet_samples=64"],
                  **{name: ["--strategy-option", "max_mixed_blocks=2"] for name in ("darts", "drnas", "rdarts")}}
MUST_RUN = {"mcunet", "nanonas", "dscnn"}
# Spaces whose input digits' images are not: they run on a dataset of their kind instead.
OWN_DATASET = {"gcn": ("digits-grid", (64, 3), 10)}
CELLS = [(space, strategy) for space in space_names() for strategy in strategy_names()]
#: the cells of the slowest space, run from their own file
OWN_FILE_SPACE = "mcunet"


def takes_input(space: str) -> str | None:
    """Why the matrix dataset's input is refused by ``space`` (None: it takes it)."""
    _, shape, classes = OWN_DATASET.get(space, (DATASET, INPUT_SHAPE, CLASSES))
    try:
        get_space(space, input_shape=shape, num_classes=classes)
    except SpaceError as exc:
        return str(exc)
    return None


def _template_for(space: str) -> str:
    """nano33ble's own template, arduino, unless its pinned library lacks an op every arch of ``space`` has
    (tinyformer's BATCH_MATMUL): then the bare-metal one, which builds the board's other TFLite Micro."""
    from tinynas.deploy.firmware import get_template
    from tinynas.space.base import space_class

    lacking = set(get_template("arduino").missing_ops) & space_class(space).ops_in_every_arch
    return "cmake-cortexm" if lacking else "arduino"


def run_cell(space: str, strategy: str, tmp_path, capsys, monkeypatch) -> None:
    """Run one cell with the real CLI and check its exit code, summary, report, model and journal."""
    from tinynas.cli.main import main

    reason = takes_input(space)
    if reason is not None:
        pytest.skip(f"{space} does not take {DATASET}'s input {INPUT_SHAPE}: {reason}")
    supported = get_strategy(strategy).supported_spaces
    refused = supported is not None and space not in supported
    out = tmp_path / "run"
    dataset = OWN_DATASET.get(space, (DATASET,))[0]
    template = _template_for(space)
    monkeypatch.setattr(sys, "argv", ["tinynas", "run", "--profile", "nano33ble", "--dataset", dataset,
                                      "--space", space, "--strategy", strategy, "--template", template, *FLAGS,
                                      *STRATEGY_FLAGS.get(strategy, []),
                                      "--max-macs", MAC_BOUND.get(space, "200k"), "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)  # main() returns when the command succeeded
    captured = capsys.readouterr()
    if refused:  # a strategy made for other spaces says so before anything is written
        assert exc.value.code == 1 and f"strategy {strategy!r} works only on" in captured.err
        assert "Traceback" not in captured.err and not out.exists()
        return
    assert exc.value.code == 0, captured.err[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    config = (out / "config.toml").read_text()
    assert f'name = "{strategy}"' in config and f'"{space}"' in config
    winner = summary["winner"]
    arch = json.loads((out / "model" / "arch.json").read_text())
    assert arch["space"] == space and winner["fits"] is True
    assert (out / "model" / "model_int8.tflite").is_file() and (out / "deploy" / "model_data.cc").is_file()
    # the summary names the firmware project and how to flash it
    assert f"firmware   {out / 'firmware' / template}   (build and flash: tinynas flash " in captured.out
    report = (out / "report.md").read_text()
    assert f"Space `{space}`, strategy `{strategy}`" in report
    assert summary["space"] == space and summary["strategy"] == strategy
    # the deployed genotype, with its keys sorted as a JSON tool would write it, is still an arch of the space
    resorted = Arch.from_json(json.loads(json.dumps(arch, sort_keys=True)))
    _, shape, classes = OWN_DATASET.get(space, (DATASET, INPUT_SHAPE, CLASSES))
    the_space = get_space(space, input_shape=shape, num_classes=classes)
    the_space.validate(resorted)
    # the report describes the winner as the space does (a pipe escaped, so the table keeps its cells)
    described = the_space.summary(resorted).replace("|", "\\|")
    assert f"| architecture | {winner['id']} `{described}` |" in report
    # and says how to read its notation where it is not words; the Markdown escape stays out of the HTML
    legend = the_space.summary_legend.replace("|", "\\|")
    assert (f"| how to read it | {legend} |" in report) == bool(legend)
    assert "\\|" not in (out / "report.html").read_text()
    # the final stage trained archs the search journaled (read back with sorted keys)
    lines = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines() if x.strip()]
    finals = [e for e in lines if e.get("stage") == "final" and "arch" in e]
    assert finals and all(e["arch"]["space"] == space for e in finals)
