"""Per-epoch checkpoints of a differentiable search, so a killed search resumes where it stopped.

One ``supernet.npz`` (network weights incl. BatchNorm statistics, momentum, alpha, Adam moments, the DrNAS
sampler's state) and one ``supernet.json`` (the per-epoch history and the config), both written to a temp
file and renamed, so a kill mid-write leaves the previous epoch's checkpoint. A checkpoint made with another
config is refused rather than silently mixed into a new search. A search that ended says so in
``supernet.json`` (``finished``), so a stage resumed after it takes the result without building the supernet.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.errors import SearchError

#: config fields added since checkpoints were first written, at the value older searches ran with
_ADDED_DEFAULTS = {"warmup_epochs": 0, "epoch_passes": 1}

_HISTORY = ("weights", "eigenvalues", "val_accuracy", "expected_latency_ms", "expected_arena_bytes")


def _arrays(state: Any) -> dict[str, np.ndarray]:
    out = {f"model_{i}": np.asarray(w) for i, w in enumerate(state.model.get_weights())}
    out.update({f"momentum_{i}": m.numpy() for i, m in enumerate(state.momentum)})
    out.update(alpha=state.alpha.numpy(), m=state.m.numpy(), v=state.v.numpy(), t=state.t.numpy(),
               rng=state.rng.state.numpy())
    return out


def _write_json(d: Path, meta: dict[str, Any]) -> None:
    tmp_json = d / "supernet.tmp.json"
    tmp_json.write_text(json.dumps(meta))
    os.replace(tmp_json, d / "supernet.json")


def save_checkpoint(state_dir: Any, state: Any, result: Any) -> None:
    """Write the state after ``result.epochs_run`` epochs."""
    d = Path(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "supernet.tmp.npz"
    np.savez(tmp, **_arrays(state))
    os.replace(tmp, d / "supernet.npz")
    _write_json(d, {"config": asdict(state.cfg), "epochs_run": result.epochs_run,
                    **{k: getattr(result, k) for k in _HISTORY}})


def mark_finished(state_dir: Any, result: Any) -> None:
    """Record how the search ended (the arch taken, before any repair to fit, and why it stopped) beside the
    last epoch's checkpoint; nothing when no epoch was checkpointed."""
    d = Path(state_dir)
    if not (d / "supernet.json").exists() or result.arch_epoch is None:
        return
    meta = json.loads((d / "supernet.json").read_text())
    meta["finished"] = {"arch": result.arch.to_json(), "arch_epoch": result.arch_epoch,
                        "stopped_early": result.stopped_early, "stop_epoch": result.stop_epoch,
                        "nan_stop": result.nan_stop}
    _write_json(d, meta)


def finished_result(state_dir: Any, config: Any, *, shape: tuple[int, int]) -> Any:
    """The result of a search with ``config`` over ``shape`` mixing weights that ended in ``state_dir``, or None
    (none ended there, or with another config or shape: resuming then refuses or continues it)."""
    from tinynas.darts.search import DartsResult
    from tinynas.space.arch import Arch

    path = Path(state_dir) / "supernet.json"
    if not path.exists():
        return None
    meta = json.loads(path.read_text())
    end = meta.get("finished")
    if end is None or {**_ADDED_DEFAULTS, **meta["config"]} != asdict(config) \
            or np.shape(meta["weights"][-1]) != tuple(shape):
        return None
    result = DartsResult(arch=Arch.from_json(end["arch"]), config=config, epochs_run=int(meta["epochs_run"]),
                         stopped_early=bool(end["stopped_early"]), stop_epoch=end["stop_epoch"],
                         arch_epoch=int(end["arch_epoch"]), nan_stop=bool(end["nan_stop"]))
    for k in _HISTORY:
        setattr(result, k, list(meta[k]))
    return result


def load_checkpoint(state_dir: Any, state: Any, result: Any, archs: list, *, derive: Any) -> int:
    """Restore a checkpoint in ``state_dir`` into ``state`` and ``result`` (and the derived ``archs``); returns
    the number of epochs it covers (0 when there is none)."""
    d = Path(state_dir)
    if not (d / "supernet.json").exists() or not (d / "supernet.npz").exists():
        return 0
    meta = json.loads((d / "supernet.json").read_text())
    if {**_ADDED_DEFAULTS, **meta["config"]} != asdict(state.cfg):
        raise SearchError(f"{d / 'supernet.json'} was written by a search with another config; delete {d} to "
                          f"start over, or resume with the same settings")
    with np.load(d / "supernet.npz") as z:
        if tuple(z["alpha"].shape) != tuple(state.alpha.shape):  # e.g. written before the plan offered skip
            raise SearchError(f"{d / 'supernet.npz'} mixes {z['alpha'].shape[0]} blocks x {z['alpha'].shape[1]} "
                              f"options, this search {state.alpha.shape[0]} x {state.alpha.shape[1]}; delete {d} "
                              f"to start over")
        n_model = sum(1 for k in z.files if k.startswith("model_"))
        state.model.set_weights([z[f"model_{i}"] for i in range(n_model)])
        for i, m in enumerate(state.momentum):
            m.assign(z[f"momentum_{i}"])
        for name in ("alpha", "m", "v", "t"):
            getattr(state, name).assign(z[name])
        state.rng.reset(z["rng"])
    for k in _HISTORY:
        setattr(result, k, list(meta[k]))
    result.epochs_run = int(meta["epochs_run"])
    archs.extend(derive(np.asarray(w)) for w in result.weights)
    return result.epochs_run
