"""Which data split a saved model was trained on, so ``deploy`` measures it on that split's test samples.

A dataset without a fixed test split (digits, a CSV, an image folder) is carved into train / validation / test
by the split seed: another seed's test samples are three quarters this seed's training samples on digits, and
a model measured on them reads high. Two producers know the seed: a run (``RUN/config.toml``, for
``RUN/model/model.keras`` and ``RUN/stages/final/ID.keras``) and ``tinynas train``, which writes
``MODEL.keras.json`` beside the model it saves.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the ``tool`` of a record ``tinynas train`` wrote (a file of that name without it is the user's, left alone)
TRAIN_TOOL = "tinynas train"


@dataclass(frozen=True)
class Provenance:
    """Where a model was trained: by what (``source``, for messages), the split ``seed`` and the dataset's
    name and fingerprint (which covers its loader options and the seed); ``given`` and ``options``: the
    dataset as the command named it (a name, path or URL) and its loader options, which ``deploy`` loads
    when no ``--dataset`` is given (None where the record predates them)."""

    source: str
    seed: int
    dataset: str | None
    fingerprint: str | None
    given: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def record_path(model: Path) -> Path:
    """``model.keras`` -> ``model.keras.json``."""
    return model.with_name(model.name + ".json")


def write_train_record(model: Path, *, seed: int, dataset: dict[str, Any], arch: dict[str, Any]) -> Path | None:
    """Write ``tinynas train``'s record beside ``model``; None (with a warning) where a file of that name is not
    one of its records: it is the user's and stays as it is."""
    path = record_path(Path(model))
    if path.exists():
        try:
            ours = json.loads(path.read_text(encoding="utf-8")).get("tool") == TRAIN_TOOL
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            ours = False
        if not ours:
            log.warning("%s is not a record of tinynas train: left as it is, so deploy will not know the split "
                        "seed (give it --seed %d)", path, seed)
            return None
    path.write_text(json.dumps({"tool": TRAIN_TOOL, "seed": int(seed), "dataset": dataset, "arch": arch}, indent=1))
    return path


def provenance_of(model: Path) -> Provenance | None:
    """The provenance of ``model`` from its run's config or its ``tinynas train`` record; None when neither
    says (a model from elsewhere, or a record that does not read)."""
    from tinynas.pipeline.rundir import config_of_run_model

    run = config_of_run_model(Path(model))
    if run is not None:
        run_dir, config = run
        data = config["dataset"]
        return Provenance(source=f"the run in {run_dir}", seed=int(config["seeds"].get("seed", 0)),
                          dataset=data.get("name"), fingerprint=data.get("fingerprint"), given=data.get("name"),
                          options=dict(data.get("options") or {}))
    path = record_path(Path(model))
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("tool") != TRAIN_TOOL or not isinstance(record.get("seed"), int):
        return None
    dataset = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    return Provenance(source=f"tinynas train ({path.name})", seed=record["seed"], dataset=dataset.get("name"),
                      fingerprint=dataset.get("fingerprint"), given=dataset.get("given"),
                      options=dict(dataset.get("options") or {}))
