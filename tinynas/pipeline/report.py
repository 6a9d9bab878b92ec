"""Reports of a run or a sweep, rebuilt from the run directory alone (config, journal, stage results).

The last stage of ``tinynas run``/``search``/``sweep`` and all of ``tinynas report``:
summary.json, report.md, report.html and pareto.png (accuracy against latency and
against arena, budgets marked, winner highlighted); sweep.json, sweep.md, sweep.html and
sweep.png (each board's winner: accuracy and its share of each budget) for sweeps.
"""

from __future__ import annotations

import html
import logging
import shlex
from pathlib import Path
from typing import Any

from tinynas.errors import SearchError
from tinynas.pipeline.rundir import RunDir, atomic_write_json, atomic_write_text, read_json
from tinynas.strategies.pareto import pareto_indices
from tinynas.text import counted, dataset_words
from tinynas.train.budget import MIN_EPOCH_SAMPLES

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"


def _pareto_note(s: dict[str, Any]) -> str:
    """What the Pareto tables' figures are: not the winner's final ones, which a reader compares them with."""
    note = ("The search's candidates, by the accuracy the search ranked them on (validation accuracy at search "
            "fidelity, a short training on a subset; for ofa, a subnet's inherited accuracy) and the cost model's "
            "latency, arena and flash.")
    return note + (" The winner's figures from its final training and deployment are above." if s.get("winner") else "")


def pareto_rows(entries: list[dict[str, Any]], cost: str) -> list[dict[str, Any]]:
    """The candidates no other beats on accuracy and ``cost`` together, cheapest first."""
    rows = [e for e in entries if e.get("accuracy") is not None and (e.get("cost") or {}).get(cost) is not None]
    points = [(-e["accuracy"], float(e["cost"][cost])) for e in rows]
    front = [rows[i] for i in pareto_indices(points)]
    return sorted(front, key=lambda e: (e["cost"][cost], -e["accuracy"]))


def summarize(run_dir: str | Path) -> dict[str, Any]:
    """``summary.json`` of a run: board, dataset, winner with its cost and int8 accuracy, search time,
    candidates evaluated, trainings done, and the Pareto fronts."""
    rd = RunDir.read(run_dir)
    config = rd.config
    search = rd.stage_done("search") or {}
    winner = rd.stage_done("winner")
    final_done = rd.stage_done("final") or {}
    deployed = rd.stage_done("deploy")
    entries = rd.journal.candidates(stage="search")
    finals = {e["id"]: e for e in rd.journal.candidates(stage="final")}
    all_candidates = rd.journal.candidates()
    scored = [e for e in all_candidates if not e.get("cached") and e.get("accuracy") is not None]
    sessions = [e for e in rd.journal.entries() if e.get("type") == "session"]
    win = None
    space = run_space(config) if winner is not None or finals else None
    if winner is not None:
        win_id = deployed["id"] if deployed else winner["id"]
        final = finals.get(win_id, winner)
        win = {"id": win_id, "arch": final["arch"], "arch_summary": _arch_summary(space, final["arch"]),
               "arch_legend": getattr(space, "summary_legend", ""),
               "cost": final["cost"], "val_accuracy": final.get("accuracy"),
               "float_test_accuracy": final.get("test_accuracy"),
               "int8_accuracy": deployed.get("int8_accuracy") if deployed else None,
               "tflm_arena_bytes": deployed.get("arena_bytes") if deployed else None,
               "tflite_flash_bytes": deployed.get("flash_bytes") if deployed else None,
               "names_stripped_bytes": deployed.get("tensor_names_stripped_bytes") if deployed else None,
               "fits": deployed.get("fits") if deployed else final["cost"].get("fits"),
               "template": deployed.get("template") if deployed else None,
               "qat": _qat_outcome(deployed.get("qat")) if deployed else None,
               "front_end": deployed.get("front_end") if deployed else None,
               "test_samples": deployed.get("test_samples") if deployed else None,
               "splits": deployed.get("splits") if deployed else None}
        if deployed and deployed.get("artifacts"):  # mobile and gpu: LiteRT or ONNX models, one row each
            win.update(kind=deployed.get("kind"), artifacts=deployed["artifacts"])
        win.update(_deployed_accuracy(deployed))
    return {
        "board": config["profile"]["id"],
        "budgets": {k: v for k, v in config["profile"].items() if k != "id"},
        "constraints": dict(config.get("constraints", {})),
        "dataset": config["dataset"]["name"],
        "dataset_options": dict(config["dataset"].get("options", {})),
        "space": config["space"]["name"],
        "strategy": config["strategy"]["name"],
        "seed": config.get("seeds", {}).get("seed"),
        "finished": winner is not None,
        "deployed": deployed is not None,
        "winner": win,
        "search_seconds": search.get("elapsed_s"),
        # why the search ended (budget, exhausted, stalled, finished) and what it left unused
        "search_stop": search.get("stop"),
        "final_training": None if not final_done else {
            "epochs": (final_done.get("budget") or {}).get("epochs"),
            "planned_epochs": config.get("budget", {}).get("final_epochs"),
            "epoch_passes": (final_done.get("budget") or {}).get("epoch_passes", 1),
            "extension": final_done.get("extension"), "fill": final_done.get("fill")},
        "finalists": _finalists(run_dir, finals, ranked=final_done.get("ranked") or [], winner=win, space=space),
        "refinement": _refinement(rd, classes=(config.get("dataset") or {}).get("num_classes")),
        "predictor": _predictor(rd),
        "supernet": _supernet(rd),
        "wall_seconds": round(sum(float(s.get("seconds", 0.0)) for s in sessions), 3),
        "candidates_evaluated": len(entries),
        "candidates_shared": sum(1 for e in entries if e.get("shared_from")),
        # what the shared candidates cost the boards that trained them, charged to this search's time
        "shared_seconds": round(sum(float(e.get("shared_seconds") or 0.0) for e in entries if e.get("shared_from")),
                                3),
        # a candidate trained on its own; ofa's subnets scored on the supernet (predicted or measured by inherited
        # accuracy) and a differentiable search's derived arch read off its supernet are not trainings
        "trainings": sum(1 for e in scored if e.get("fidelity") not in ("ofa", "supernet")),
        "subnets_scored": sum(1 for e in scored if e.get("fidelity") == "ofa"),
        "subnets_predicted": sum(1 for e in scored if e.get("predicted")),
        "train_seconds": round(sum(float(e.get("train_seconds") or 0.0) for e in all_candidates
                                   if not e.get("cached")), 3),
        "failed": sum(1 for e in all_candidates if e.get("accuracy") is None),
        "pareto": {"latency_ms": [_row(e) for e in pareto_rows(entries, "latency_ms")],
                   "arena_bytes": [_row(e) for e in pareto_rows(entries, "arena_bytes")]},
    }


def _deployed_accuracy(deployed: dict[str, Any] | None) -> dict[str, Any]:
    """The test accuracy of the model the board runs, and which file that is: the int8 model in TFLite Micro
    or LiteRT, a GPU's fp32 ONNX model in ONNX Runtime (a GPU gets no int8 model)."""
    if not deployed:
        return {"deployed_accuracy": None, "deployed_model": None}
    from tinynas.deploy.runtime_deploy import PRIMARY

    name = PRIMARY.get(deployed.get("kind") or "mcu", "model_int8.tflite")
    artifact = (deployed.get("artifacts") or {}).get(name) or {}
    accuracy = deployed.get("int8_accuracy") if name == "model_int8.tflite" else artifact.get("accuracy")
    return {"deployed_accuracy": accuracy, "deployed_model": name}


def _finalists(run_dir: str | Path, finals: dict[str, dict[str, Any]], *, ranked: list[str],
               winner: dict[str, Any] | None, space: Any) -> list[dict[str, Any]]:
    """The candidates the final stage trained, in its ranking (validation accuracy, then validation loss):
    what the winner was chosen from, with each model's file, so a reader can deploy another one."""
    order = [i for i in ranked if i in finals] + [i for i in finals if i not in ranked]
    rows = []
    for i in order:
        e = finals[i]
        if e.get("accuracy") is None:
            continue
        rows.append({"id": i, "winner": winner is not None and winner["id"] == i,
                     "arch_summary": _arch_summary(space, e["arch"]) or _arch_text(e["arch"]),
                     "val_accuracy": e["accuracy"], "val_loss": e.get("val_loss"),
                     "float_test_accuracy": e.get("test_accuracy"),
                     "latency_ms": e["cost"].get("latency_ms"), "arena_bytes": e["cost"].get("arena_bytes"),
                     "flash_bytes": e["cost"].get("flash_bytes"), "macs": e["cost"].get("macs"),
                     "model": str(Path(run_dir) / "stages" / "final" / f"{i}.keras")})
    return rows


NEAR_TIE = 0.0025  # validation accuracies this close are one split's noise (0.6 points of binomial error at 94 %
#                  on 1,500 images), not a difference to pay 25 % more latency or flash for


def cheaper_tie_note(s: dict[str, Any]) -> str | None:
    """A finalist within ``NEAR_TIE`` of the winner's validation accuracy at 80 % or less of its latency or
    flash: the pick between them was the split's noise (or, on a tie, the validation loss), which a reader
    shipping to a board may weigh otherwise. None when there is none."""
    rows = s.get("finalists") or []
    win = next((r for r in rows if r["winner"]), None)
    if win is None or not win.get("latency_ms"):
        return None
    cheaper = [r for r in rows if not r["winner"] and win["val_accuracy"] - r["val_accuracy"] <= NEAR_TIE
               and ((r.get("latency_ms") or 0) <= 0.8 * win["latency_ms"]
                    or (r.get("flash_bytes") or 0) <= 0.8 * (win.get("flash_bytes") or 0))]
    if not cheaper:
        return None
    r = min(cheaper, key=lambda c: c.get("latency_ms") or 0)
    if r["val_accuracy"] >= win["val_accuracy"]:
        how = (f"tied the winner on validation accuracy ({r['val_accuracy']:.4f}; the validation loss chose the "
               "winner)")
    else:
        how = (f"came within {100 * (win['val_accuracy'] - r['val_accuracy']):.2f} points of the winner's "
               f"validation accuracy ({r['val_accuracy']:.4f} against {win['val_accuracy']:.4f})")
    ship = shlex.join(["tinynas", "deploy", str(r["model"]), "--profile", str(s["board"]),
                       *dataset_words(s["dataset"], s.get("dataset_options") or {}), "--out", "DIR"])
    return (f"{r['id']} {how} at {_fmt(r['latency_ms'], '.2f')} ms and {_fmt(r['flash_bytes'], ',')} B of flash "
            f"against {_fmt(win['latency_ms'], '.2f')} ms and {_fmt(win['flash_bytes'], ',')} B. To ship it "
            f"instead: {ship}")


FINALIST_COLUMNS = ("id", "val acc", "val loss", "float test acc", "latency (ms)", "arena (bytes)", "flash (bytes)",
                    "architecture")


def _finalist_cells(r: dict[str, Any]) -> list[str]:
    return [r["id"] + (" (winner)" if r["winner"] else ""), _fmt(r["val_accuracy"], ".4f"), _fmt(r["val_loss"], ".4g"),
            _fmt(r["float_test_accuracy"], ".4f"), _fmt(r["latency_ms"], ".2f"), _fmt(r["arena_bytes"], ","),
            _fmt(r["flash_bytes"], ","), r["arch_summary"]]


FINALISTS_TEXT = ("The search's best candidates, trained at full fidelity; the winner is the most accurate on the "
                  "validation split, then the one with the lowest validation loss. Each model is in "
                  "stages/final/ID.keras.")


def _refinement(rd: RunDir, *, classes: int | None) -> dict[str, Any] | None:
    """What the differentiable stage did: ``staged --refine``'s ``refine`` or ``--strategy darts|drnas|rdarts``'s
    ``differentiable`` (None when the run has neither)."""
    for stage in ("refine", "differentiable"):
        done = rd.stage_done(stage)
        if done:
            search = done.get("search") or {}
            vals, at = search.get("val_accuracy") or [], search.get("arch_epoch")
            return {"stage": stage, "method": done.get("method") or done.get("strategy"), "base": done.get("base"),
                    "mixed_blocks": done.get("mixed_blocks"), "derived": done.get("derived"),
                    "expected_latency_ms": done.get("expected_latency_ms"), "latency_ms": done.get("latency_ms"),
                    "handed": done.get("handed"), "skipped": done.get("skipped"), "notes": done.get("notes") or [],
                    "accuracy": done.get("accuracy"), "cut_accuracy": done.get("cut_accuracy"),
                    "feasible": done.get("feasible"), "top": len(done.get("top") or []),
                    "seconds": search.get("seconds"), "epochs_run": search.get("epochs_run"),
                    "epoch_passes": (search.get("config") or {}).get("epoch_passes", 1),
                    "supernet_val_accuracy": (vals[-1 if at is None else at] if vals else None),
                    "classes": classes, "chance_accuracy": done.get("chance_accuracy"),
                    "hyperparameters": done.get("hyperparameters")}
    return None


def _supernet(rd: RunDir) -> dict[str, Any] | None:
    """ofa's supernet: trained, resumed or reused, and the seconds that cost (None for other strategies). A
    run's search takes seconds, so this is where an ofa run's wall time went, or what the cache saved."""
    done = rd.stage_done("supernet")
    if not done:
        return None
    schedule = done.get("schedule") or {}
    return {"key": Path(done["directory"]).name, "directory": done["directory"], "reused": done["reused"],
            "resumed_from": done.get("resumed_from"), "seconds": done.get("seconds"),
            "phase_seconds": done.get("phase_seconds") or {}, "cached_training": done.get("cached_training") or {},
            "epochs": schedule.get("epochs"), "reader_epochs": schedule.get("reader_epochs", 0),
            "max_width": schedule.get("max_width"), "notes": done.get("notes") or []}


def supernet_text(sn: dict[str, Any]) -> str:
    """What the run did with its once-for-all supernet, in words (report and ``tinynas run``'s summary)."""
    if sn["reused"]:
        cached = sn.get("cached_training") or {}
        text = f"reused from the cache ({sn['key']})"
        if cached.get("phase_seconds"):
            # rounded to 0.1 s first, as the training run's done.json rounds its "seconds": a reuse then says the
            # same whole seconds as the run that trained it ("trained in 8 s" and "saved its 8 s", not 7 s)
            took = round(sum(float(v) for v in cached["phase_seconds"].values()), 1)
            text += (f", which saved its {took:.0f} s of training"
                     + (f" (the session that finished it, after resuming from {cached['resumed_from']})"
                        if cached.get("resumed_from") else ""))
        return text
    text = (f"resumed from {sn['resumed_from']}, the rest trained in {float(sn['seconds'] or 0):.0f} s"
            if sn.get("resumed_from") else f"trained in {float(sn['seconds'] or 0):.0f} s")
    if sn.get("phase_seconds"):
        text += " (" + ", ".join(f"{k} {float(v):.0f}" for k, v in sn["phase_seconds"].items()) + " s)"
    return text + f", cached as {sn['key']} for later runs and boards on the same dataset, space and schedule"


def _supernet_lines(s: dict[str, Any]) -> list[str]:
    sn = s.get("supernet")
    if not sn:
        return []
    line = f"Once-for-all supernet: {supernet_text(sn)}."
    if sn.get("epochs"):
        line += (f" Progressive shrinking at max width {sn['max_width']}, epochs per phase "
                 f"{'/'.join(str(e) for e in sn['epochs'])}"
                 + (f" and a {sn['reader_epochs']}-epoch readers phase" if sn.get("reader_epochs") else "") + ".")
    return [line] + [f"Supernet checkpoint: {note}." for note in sn.get("notes") or []]


def _predictor(rd: RunDir) -> dict[str, Any] | None:
    """How ofa's accuracy predictor did (``score=predictor``): its fit, and what measuring its best showed."""
    fit = (rd.stage_done("supernet") or {}).get("predictor")
    if not fit:
        return None
    verify = rd.stage_done("verify") or {}
    return {"pairs": fit["n_train"] + fit["n_held_out"], "mae": fit["mae"], "kendall_tau": fit["kendall_tau"],
            "verified": verify.get("verified"), "predicted_rank_of_best": verify.get("predicted_rank_of_best"),
            "verified_kendall_tau": verify.get("kendall_tau"), "rounds": verify.get("rounds", 1),
            "best_round": verify.get("best_round", 1)}


def _predictor_lines(s: dict[str, Any]) -> list[str]:
    p = s.get("predictor")
    if not p:
        return []
    line = (f"Subnets scored by the accuracy predictor, fitted on {p['pairs']} subnets' inherited accuracy "
            f"(held-out error {100 * p['mae']:.1f} points, Kendall tau {p['kendall_tau']:.2f}).")
    if p.get("verified") and p.get("rounds", 1) > 1:
        line += (f" The {p['verified']} best predicted were measured in {p['rounds']} rounds, the predictor refitted "
                 f"with the measured ones before each later round; the best was measured number "
                 f"{p['predicted_rank_of_best']}, in round {p['best_round']} (tau between prediction and "
                 f"measurement {p['verified_kendall_tau']:.2f}).")
    elif p.get("verified"):
        line += (f" The {p['verified']} best predicted were measured; the best of them was number "
                 f"{p['predicted_rank_of_best']} by prediction (tau among them {p['verified_kendall_tau']:.2f}).")
    return [line]


def refinement_text(r: dict[str, Any]) -> str:
    """What the differentiable stage derived and what became of it, in words (report and the CLI summary)."""
    if r.get("skipped"):
        return f"{r['method']} skipped: {r['skipped']}"
    took = f" in {float(r['seconds']):.0f} s" if r.get("seconds") is not None else ""
    mixed = counted(int(r['mixed_blocks']), 'mixed block')
    given = ", ".join(f"{k}={v}" for k, v in (r.get("hyperparameters") or {}).items())  # --refine-option
    method = f"{r['method']} ({given})" if given else r["method"]
    text = f"{method} on a layer-wise supernet around {r['base']} ({mixed}){took}: derived {r['derived']}"
    if r.get("handed") is None:  # --strategy darts|drnas|rdarts: the derived arch is what final training trains
        return text
    scored = "" if r.get("accuracy") is None else f"{float(r['accuracy']):.4f} at search fidelity"
    if r["handed"]:  # only a scored, fitting arch is handed
        return text + f", handed to final training ({scored})"
    if r.get("feasible") is False:
        return text + ", not handed to final training: it does not fit the board"
    if not scored:
        return text + ", not handed to final training: its search-fidelity training failed"
    return (text + f", not handed to final training: it scored {scored}, below the {float(r['cut_accuracy']):.4f} "
            f"of the last of the {r['top']} top candidates")


def _refinement_lines(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return []
    out = [f"## Differentiable refinement ({r['method']}, stage `{r['stage']}`)", ""]
    if r.get("skipped"):
        return out + [f"Skipped: {r['skipped']}.", ""]
    out.append(f"Search: {refinement_text(r)}. Expected latency under the final mixing weights "
               f"{_fmt(r['expected_latency_ms'], '.2f')} ms; the cost model gives the derived arch "
               f"{_fmt(r['latency_ms'], '.2f')} ms.")
    if r.get("supernet_val_accuracy") is not None:
        passes = int(r.get("epoch_passes") or 1)
        each = f", each {passes} passes over the small training set" if passes > 1 else ""
        val, classes = float(r["supernet_val_accuracy"]), r.get("classes")
        # a run from before chance_accuracy was recorded: a balanced split's 1/classes
        guess = r.get("chance_accuracy") or (1.0 / int(classes) if classes else None)
        option = "--refine-option" if r["stage"] == "refine" else "--strategy-option"
        chance = (f" That is chance for {classes} classes (a constant guess scores {guess:.4f} on this split): the "
                  f"supernet did not learn, and the mixing weights followed the hardware loss alone; more "
                  f"--search-epochs, or {option} supernet_epochs=N, train it further."
                  if guess is not None and val <= guess + 1e-9 else "")
        out.append(f"The supernet trained {counted(int(r['epochs_run']), 'epoch')}{each}; at the epoch whose arch "
                   f"was taken it scored {val:.4f} on the validation split.{chance}")
    out += [f"- {note}" for note in r.get("notes", [])]
    return out + [""]


def _row(e: dict[str, Any]) -> dict[str, Any]:
    c = e["cost"]
    return {"id": e["id"], "accuracy": e["accuracy"], "latency_ms": c.get("latency_ms"),
            "arena_bytes": c.get("arena_bytes"), "flash_bytes": c.get("flash_bytes"), "macs": c.get("macs"),
            "arch": e["arch"]["decisions"]}


def write_report(run_dir: str | Path) -> dict[str, Any]:
    """Write summary.json, report.md, report.html and pareto.png into ``run_dir``; returns the summary."""
    run_dir = Path(run_dir)
    summary = summarize(run_dir)
    entries = RunDir.read(run_dir).journal.candidates(stage="search")
    plot_pareto(entries, summary, run_dir / "pareto.png")
    atomic_write_json(run_dir / "summary.json", summary)
    atomic_write_text(run_dir / "report.md", render_markdown(summary))
    atomic_write_text(run_dir / "report.html", render_html(summary))
    return summary


def plot_pareto(entries: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    """Accuracy against latency and against arena: all candidates, the front, the budget, the winner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = summary["budgets"]
    win_id = (summary.get("winner") or {}).get("id")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, cost, label, budget in (
        (axes[0], "latency_ms", "predicted latency (ms)", budgets.get("latency_target_ms")),
        (axes[1], "arena_bytes", "TFLM arena (KiB)", budgets.get("sram_budget_bytes")),
    ):
        scale = 1024.0 if cost == "arena_bytes" else 1.0
        rows = [e for e in entries if e.get("accuracy") is not None]
        xs = [e["cost"][cost] / scale for e in rows]
        ax.scatter(xs, [e["accuracy"] for e in rows], s=16, color="0.6", label="candidates")
        front = pareto_rows(entries, cost)
        ax.plot([e["cost"][cost] / scale for e in front], [e["accuracy"] for e in front], "o-", color="tab:blue",
                ms=5, label="Pareto front")
        if budget:
            edge = budget / scale
            hi = max(xs + [edge]) * 1.08 if xs else edge * 1.1
            ax.axvspan(0, edge, color="tab:green", alpha=0.08, label="feasible (budget)")
            ax.axvline(edge, color="tab:green", lw=1)
            ax.set_xlim(0, hi)
        for e in rows:
            if e["id"] == win_id:
                ax.scatter([e["cost"][cost] / scale], [e["accuracy"]], marker="*", s=220, color="tab:red",
                           zorder=5, label=f"winner {win_id}")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (validation, search fidelity)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{summary['space']} on {summary['dataset']} for {summary['board']} ({summary['strategy']})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _winner_lines(s: dict[str, Any]) -> list[tuple[str, str]]:
    from tinynas.deploy.codegen import front_end_ram_text

    w = s.get("winner") or {}
    c = w.get("cost") or {}
    return [
        ("architecture", f"{w.get('id', '-')} `{w.get('arch_summary') or _arch_text(w.get('arch'))}`"),
        *([("how to read it", w["arch_legend"])] if w.get("arch_summary") and w.get("arch_legend") else []),
        ("validation accuracy (float, final training)", _fmt(w.get("val_accuracy"), ".4f")),
        ("test accuracy (float)", _fmt(w.get("float_test_accuracy"), ".4f")),
        *(_artifact_lines(w) or [("test accuracy (int8, TFLite Micro)", _fmt(w.get("int8_accuracy"), ".4f")
                                  + _qat_note(w.get("qat")))]),
        ("predicted latency", f"{_fmt(c.get('latency_ms'), '.2f')} ms (target {_fmt(s['budgets'].get('latency_target_ms'))} ms)"),
        ("arena", f"{_fmt(w.get('tflm_arena_bytes') or c.get('arena_bytes'), ',')} bytes "
                  f"(budget {_fmt(s['budgets'].get('sram_budget_bytes'), ',')}"
                  + (f"; {s['budgets']['front_end_reserve_bytes']:,} more set aside for the front end and the "
                     "arena's margin" if s["budgets"].get("front_end_reserve_bytes") else "") + ")"),
        ("flash", f"{_fmt(w.get('tflite_flash_bytes') or c.get('flash_bytes'), ',')} bytes "
                  f"(budget {_fmt(s['budgets'].get('flash_budget_bytes'), ',')}"
                  + (f"; {w['names_stripped_bytes']:,} bytes of the converter's tensor names stripped"
                     if w.get("names_stripped_bytes") else "") + ")"),
        ("MACs", _fmt(c.get("macs"), ",") + (f" (bound {_fmt(s['budgets']['max_macs'], ',')})"
                                             if s["budgets"].get("max_macs") else "")),
        ("budgets from the command line", ", ".join(f"{k} {v}" for k, v in s.get("constraints", {}).items())
         or "none (the profile's)"),
        *([("test split", f"{w['test_samples']:,} samples" + (f"; {w['splits']}" if w.get("splits") else ""))]
          if w.get("test_samples") else []),
        ("firmware template", _fmt(w.get("template"))),
        *([("front end", f"{w['front_end']['file']}: {front_end_ram_text(w['front_end'])}")]
          if w.get("front_end") else []),
    ]


def _qat_outcome(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """Deploy's QAT record without its settings: whether it ran, why, and which int8 model won."""
    if not record:
        return None
    return {k: v for k, v in record.items() if k != "settings"}


def _qat_note(qat: dict[str, Any] | None) -> str:
    """How the int8 number came about, when quantization-aware fine-tuning ran or was turned off."""
    if qat and qat.get("requested") is False:
        return " (post-training quantization; fine-tuning turned off by --no-qat)"
    if not qat or not qat.get("applied"):
        return ""
    ptq = _fmt(qat.get("ptq_int8_accuracy"), ".4f")
    if qat.get("used"):
        passes = qat.get("epoch_passes") or 1
        each = f", each epoch {passes} passes over the small training set" if passes > 1 else ""
        return f" after quantization-aware fine-tuning{each} (post-training quantization: {ptq})"
    return " (post-training quantization; fine-tuning ran and was not better on validation)"


def _artifact_lines(w: dict[str, Any]) -> list[tuple[str, str]]:
    """One row per model a mobile or GPU deploy wrote (empty for microcontrollers)."""
    names = {"litert": "LiteRT", "onnxruntime": "ONNX Runtime"}
    return [(f"test accuracy ({name}, {names.get(a.get('runtime'), a.get('runtime'))})",
             f"{_fmt(a.get('accuracy'), '.4f')} (max abs difference to Keras {_fmt(a.get('max_abs_diff'), '.2e')}, "
             f"{_fmt(a.get('file_bytes'), ',')} bytes)")
            for name, a in (w.get("artifacts") or {}).items()]


def _cell(text: str) -> str:
    """``text`` for a Markdown table cell: a pipe would end the cell, even inside backticks (mcunet's stages,
    NAS-Bench-201's arch strings)."""
    return text.replace("|", "\\|")


def run_space(config: dict[str, Any]) -> Any:
    """The run's search space, or None when it cannot be rebuilt here."""
    from tinynas.errors import TinyNASError
    from tinynas.space import get_space

    try:
        data = config["dataset"]
        return get_space(config["space"]["name"], input_shape=data["input_shape"], num_classes=data["num_classes"])
    except (TinyNASError, KeyError, TypeError, ValueError):
        return None


def _arch_summary(space: Any, arch: Any) -> str | None:
    """The space's own one-line description of ``arch`` (mcunet's leaves out the blocks its depths do not
    use, which the decisions still list); None without the space, or for an arch it does not hold."""
    from tinynas.errors import TinyNASError
    from tinynas.space import Arch

    if space is None:
        return None
    try:
        return space.summary(Arch.from_json(arch))
    except (TinyNASError, KeyError, TypeError, ValueError):
        return None


def _arch_text(arch: Any) -> str:
    if not arch:
        return "-"
    d = arch.get("decisions", arch)
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _stop_lines(s: dict[str, Any]) -> list[str]:
    """Why the search ended early and how the final training used the rest (nothing when the budget ended it)."""
    stop = s.get("search_stop") or {}
    lines = []
    if stop.get("reason") not in (None, "budget"):
        title = "Feasible space exhausted." if stop["reason"] == "exhausted" else "Search stopped early."
        feasible = stop.get("feasible_archs")
        message = str(stop.get("message") or "")
        lines.append(f"{title} {message[:1].upper()}{message[1:]}. Feasible archs: "
                     f"{'unknown (the space is too big to count)' if feasible is None else feasible}; "
                     f"trained: {stop.get('evaluated')}.")
    final = s.get("final_training") or {}
    ext = final.get("extension")
    if ext:
        lines.append(f"Final training: {ext['epochs']} epochs per candidate instead of {ext['planned_epochs']} "
                     f"(+{ext['extra_epochs']}, the work the search left unused).")
    if final.get("fill"):
        lines.append(f"Final training: {fill_text(final['fill'])}.")
    if (final.get("epoch_passes") or 1) > 1:
        lines.append(f"The training set is small: each epoch of the search's and the final training passes over "
                     f"it several times ({final['epoch_passes']} in the final training), so that an epoch draws "
                     f"{MIN_EPOCH_SAMPLES:,} samples or more, as on a larger set.")
    return lines


def fill_text(fill: dict[str, Any]) -> str:
    """What ofa's ``fill_budget`` chose, in words (report and ``tinynas run``'s summary)."""
    return (f"top {fill['top_k']} x {fill['epochs']} epochs to fill the {fill['seconds']:.0f} s the search left "
            f"(the best candidate took {fill['probe_seconds']:.0f} s at the planned epochs)")


def scored_text(s: dict[str, Any]) -> str:
    """", N subnets scored on the supernet (M of them by the accuracy predictor)" for an ofa run, else ""."""
    n, predicted = s.get("subnets_scored") or 0, s.get("subnets_predicted") or 0
    if not n:
        return ""
    return f", {n} subnets scored on the supernet" + (f" ({predicted} of them by the accuracy predictor)"
                                                       if predicted else "")


def dataset_options_text(s: dict[str, Any]) -> str:
    """The dataset's loader options as given (-o KEY=VALUE), "" when none were."""
    options = s.get("dataset_options") or {}
    return ", ".join(f"{k}={v}" for k, v in options.items())


def search_time_text(s: dict[str, Any]) -> str:
    """"search N s": with shared candidates, how much of N they cost on the boards that trained them (a board
    charges them to its time budget), which is why N can exceed the run's wall time."""
    seconds, shared = s.get("search_seconds"), float(s.get("shared_seconds") or 0.0)
    if seconds is None:
        return "search not finished"
    return f"search {seconds:.0f} s" + (f" ({shared:.0f} s of it the shared candidates' on other boards)"
                                        if shared > 0 else "")


def render_markdown(s: dict[str, Any]) -> str:
    options = dataset_options_text(s)
    out = [f"# tinynas run: {s['dataset']} on {s['board']}", "",
           (f"Dataset options: {options}. " if options else "") +
           f"Space `{s['space']}`, strategy `{s['strategy']}`, seed {s['seed']}. "
           f"{s['candidates_evaluated']} candidates evaluated ({s['candidates_shared']} shared from other boards), "
           f"{s['trainings']} trainings{scored_text(s)}, {search_time_text(s)}, "
           f"wall {_fmt(s['wall_seconds'], '.0f')} s.", ""]
    out += [line + "\n" for line in _supernet_lines(s) + _stop_lines(s) + _predictor_lines(s)]
    out += _refinement_lines(s.get("refinement"))
    if not s.get("winner"):
        out += ["The run has not finished yet: run the same command again to resume.", ""]
    else:
        out += ["## Winner", "", "| | |", "|---|---|"]
        out += [f"| {k} | {_cell(v)} |" for k, v in _winner_lines(s)]
        out.append("")
    if len(s.get("finalists") or []) > 1:
        out += ["## Finalists", "", FINALISTS_TEXT, "", "| " + " | ".join(FINALIST_COLUMNS) + " |",
                "|" + "---|" * len(FINALIST_COLUMNS)]
        out += ["| " + " | ".join(_cell(c) for c in _finalist_cells(r)) + " |" for r in s["finalists"]]
        out.append("")
        note = cheaper_tie_note(s)
        if note:
            out += [note, ""]
    out += ["## Pareto front", "", _pareto_note(s), "", "![Pareto front](pareto.png)", ""]
    for cost, title in (("latency_ms", "accuracy against latency"), ("arena_bytes", "accuracy against arena")):
        out += [f"### {title}", "", "| id | accuracy | latency (ms) | arena (bytes) | flash (bytes) | MACs |",
                "|---|---|---|---|---|---|"]
        for r in s["pareto"][cost]:
            out.append(f"| {r['id']} | {r['accuracy']:.4f} | {_fmt(r['latency_ms'], '.2f')} | {_fmt(r['arena_bytes'], ',')} | "
                       f"{_fmt(r['flash_bytes'], ',')} | {_fmt(r['macs'], ',')} |")
        out.append("")
    return "\n".join(out)


def render_html(s: dict[str, Any]) -> str:
    e = html.escape
    options = dataset_options_text(s)
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>tinynas: {e(s['dataset'])} on {e(s['board'])}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}</style>",
             "</head><body>", f"<h1>tinynas run: {e(s['dataset'])} on {e(s['board'])}</h1>",
             f"<p>{e(f'Dataset options: {options}. ' if options else '')}"
             f"Space <code>{e(s['space'])}</code>, strategy <code>{e(s['strategy'])}</code>. "
             f"{s['candidates_evaluated']} candidates evaluated, {s['trainings']} trainings{e(scored_text(s))}, "
             f"{e(search_time_text(s))}.</p>"]
    parts += [f"<p>{e(line)}</p>" for line in _supernet_lines(s) + _stop_lines(s) + _predictor_lines(s)]
    refinement = _refinement_lines(s.get("refinement"))
    if refinement:  # a "## title" line, then its paragraphs
        parts.append(f"<h2>{e(refinement[0].removeprefix('## '))}</h2>")
        parts += [f"<p>{e(line)}</p>" for line in refinement[1:] if line]
    if s.get("winner"):
        parts.append("<h2>Winner</h2><table>")
        parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _winner_lines(s)]
        parts.append("</table>")
    if len(s.get("finalists") or []) > 1:
        parts.append(f"<h2>Finalists</h2><p>{e(FINALISTS_TEXT)}</p><table><tr>"
                     + "".join(f"<th>{e(c)}</th>" for c in FINALIST_COLUMNS) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in _finalist_cells(r)) + "</tr>" for r in s["finalists"]]
        parts.append("</table>")
        note = cheaper_tie_note(s)
        if note:
            parts.append(f"<p>{e(note)}</p>")
    parts.append(f"<h2>Pareto front</h2><p>{e(_pareto_note(s))}</p>"
                 "<img src='pareto.png' alt='Pareto front' style='max-width:100%'>")
    for cost, title in (("latency_ms", "accuracy against latency"), ("arena_bytes", "accuracy against arena")):
        parts.append(f"<h3>{e(title)}</h3><table><tr><th>id</th><th>accuracy</th><th>latency (ms)</th>"
                     "<th>arena (bytes)</th><th>flash (bytes)</th><th>architecture</th></tr>")
        for r in s["pareto"][cost]:
            parts.append(f"<tr><td>{e(r['id'])}</td><td>{r['accuracy']:.4f}</td><td>{e(_fmt(r['latency_ms'], '.2f'))}"
                         f"</td><td>{_fmt(r['arena_bytes'], ',')}</td><td>{_fmt(r['flash_bytes'], ',')}</td>"
                         f"<td>{e(_arch_text(r['arch']))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


# -- sweeps ---------------------------------------------------------------------------------------
def write_sweep_report(sweep_dir: str | Path) -> dict[str, Any]:
    """Rebuild sweep.json and sweep.md from the sweep's board runs and its recorded failures."""
    sweep_dir = Path(sweep_dir)
    meta = read_json(sweep_dir / "sweep_state.json")
    if meta is None:
        raise SearchError(f"{sweep_dir} is not a tinynas sweep (no sweep_state.json)")
    boards = []
    for board in meta["boards"]:
        row: dict[str, Any] = {"board": board, "status": "pending"}
        failure = meta.get("failures", {}).get(board)
        run_path = sweep_dir / board
        if failure:
            row.update(status="failed", error=failure)
        elif (run_path / "config.toml").is_file():
            try:
                s = write_report(run_path)
            except SearchError as exc:
                row.update(status="failed", error=str(exc))
            else:
                w = s.get("winner") or {}
                c = w.get("cost") or {}
                row.update(status="ok" if s["finished"] else "unfinished", winner=w.get("id"),
                           val_accuracy=w.get("val_accuracy"), int8_accuracy=w.get("int8_accuracy"),
                           deployed_accuracy=w.get("deployed_accuracy"), deployed_model=w.get("deployed_model"),
                           latency_ms=c.get("latency_ms"), arena_bytes=w.get("tflm_arena_bytes") or c.get("arena_bytes"),
                           flash_bytes=w.get("tflite_flash_bytes") or c.get("flash_bytes"),
                           candidates=s["candidates_evaluated"], shared=s["candidates_shared"],
                           trainings=s["trainings"], budgets=s["budgets"],
                           search_stop=(s.get("search_stop") or {}).get("reason"))
                if s.get("supernet"):
                    row["supernet"] = {k: s["supernet"][k] for k in ("key", "reused", "seconds")}
        boards.append(row)
    result = {"dataset": meta["dataset"], "dataset_options": meta.get("dataset_options", {}),
              "space": meta["space"], "strategy": meta["strategy"],
              "order": meta.get("order"), "run_order": meta.get("run_order", []), "boards": boards,
              "seconds": meta.get("seconds"),
              "trainings": sum(r.get("trainings", 0) for r in boards),
              "failed": [r["board"] for r in boards if r["status"] == "failed"]}
    atomic_write_json(sweep_dir / SWEEP_FILE, result)
    plot_sweep(result, sweep_dir / "sweep.png")
    atomic_write_text(sweep_dir / "sweep.md", render_sweep_markdown(result))
    atomic_write_text(sweep_dir / "sweep.html", render_sweep_html(result))
    return result


def _sweep_supernet_text(boards: list[dict[str, Any]]) -> str:
    """Which board trained each once-for-all supernet and how many reused it: an ofa sweep shares the
    supernet, not candidates (each board searches its own subnets)."""
    by_key: dict[str, dict[str, Any]] = {}
    for b in boards:
        sn = b.get("supernet")
        if sn:
            entry = by_key.setdefault(sn["key"], {"trained": [], "reused": []})
            entry["reused" if sn["reused"] else "trained"].append((b["board"], float(sn["seconds"] or 0.0)))
    parts = []
    for key, e in by_key.items():
        trained = ", ".join(f"{board} ({sec:.0f} s)" for board, sec in e["trained"]) or "an earlier run"
        parts.append(f"Once-for-all supernet {key}: trained by {trained}, "
                     f"reused by {counted(len(e['reused']), 'board')}.")
    return " ".join(parts) + " Each board searched its own subnets on it."


def sweep_budget_note(boards: list[dict[str, Any]]) -> str | None:
    """The boards whose candidate budget the earlier boards' shared candidates filled, so that they
    searched nothing of their own: their winner is the best of what tighter boards found, which a
    reader of the table would otherwise take for the board's own search."""
    starved = [b for b in boards if b.get("status") != "failed" and b.get("search_stop") == "budget"
               and b.get("shared") and b.get("candidates") == b.get("shared")]
    if not starved:
        return None
    names = [b["board"] for b in starved]
    one = len(names) == 1
    who = names[0] if one else ", ".join(names[:-1]) + " and " + names[-1]
    return (f"{who} evaluated no candidate of {'its' if one else 'their'} own: the candidates shared from earlier "
            f"boards filled the search budget, so {'its' if one else 'each'} winner is the best of what the tighter "
            "boards found. For a search of each board's own, raise --budget-candidates or --budget-minutes (a "
            "board gets the shared ones plus the rest) or pass --order roomiest-first.")


SWEEP_COLUMNS = ("board", "status", "winner", "test acc (deployed model)", "val acc", "latency (ms)",
                 "arena or runtime memory (bytes)", "flash or model file (bytes)", "candidates (shared)", "trainings")


def _sweep_paragraphs(r: dict[str, Any]) -> list[str]:
    ofa = any(b.get("supernet") for b in r["boards"])
    options = dataset_options_text(r)
    return [(f"Dataset options: {options}. " if options else "") +
            f"Space `{r['space']}`, strategy `{r['strategy']}`; {r['trainings']} trainings in all "
            f"({'the supernet is' if ofa else 'candidates are'} shared across boards through one cache), "
            f"{_fmt(r['seconds'], '.0f')} s.",
            f"Boards ran {r.get('order') or 'in order'}: {', '.join(r.get('run_order') or [])}. "
            + (_sweep_supernet_text(r["boards"]) if ofa else
               "Each board was told the earlier boards' results that fit it, counted in its budget (the `shared` "
               "column).")]


def _sweep_cells(b: dict[str, Any]) -> list[str]:
    """One board's row of the sweep table, the board's name first (each renderer links it to its report)."""
    if b["status"] == "failed":
        return [b["board"], f"failed: {b.get('error', '')[:300]}"] + [""] * (len(SWEEP_COLUMNS) - 2)
    early = b.get("search_stop") not in (None, "budget")
    return [b["board"], f"{b['status']} (search {b['search_stop']})" if early else b["status"],
            _fmt(b.get("winner")), _deployed_cell(b), _fmt(b.get("val_accuracy"), ".4f"),
            _fmt(b.get("latency_ms"), ".2f"), _fmt(b.get("arena_bytes"), ","), _fmt(b.get("flash_bytes"), ","),
            f"{_fmt(b.get('candidates'))} ({_fmt(b.get('shared'))})", _fmt(b.get("trainings"))]


def _deployed_cell(b: dict[str, Any]) -> str:
    """The deployed model's test accuracy; the file it was measured on where that is not the int8 model."""
    accuracy = b.get("deployed_accuracy", b.get("int8_accuracy"))  # rows written before deployed_accuracy
    if accuracy is None:
        return "-"
    model = b.get("deployed_model")
    return f"{accuracy:.4f}" + ("" if model in (None, "model_int8.tflite") else f" ({model})")


def sweep_accuracy_text(b: dict[str, Any]) -> str:
    """A sweep board's accuracy for one line of output: "test acc 0.9777" (int8), "test acc 0.9814
    (model_fp32.onnx)", or "val acc 0.9963" where nothing was deployed."""
    cell = _deployed_cell(b)
    if cell != "-":
        return f"test acc {cell}"
    return "val acc " + _fmt(b.get("val_accuracy"), ".4f")


def shown_accuracy(b: dict[str, Any]) -> float | None:
    """A sweep board's accuracy to show: its deployed model's on the test split, else (a search-only sweep) the
    winner's validation accuracy. Rows written before ``deployed_accuracy`` existed have ``int8_accuracy``."""
    for key in ("deployed_accuracy", "int8_accuracy", "val_accuracy"):
        if b.get(key) is not None:
            return float(b[key])
    return None


def _has_report(b: dict[str, Any]) -> bool:
    return b["status"] in ("ok", "unfinished")  # not "failed", nor "pending" (not started)


def render_sweep_markdown(r: dict[str, Any]) -> str:
    out = [f"# tinynas sweep: {r['dataset']} over {len(r['boards'])} boards", ""]
    for paragraph in _sweep_paragraphs(r):
        out += [paragraph, ""]
    out += ["| " + " | ".join(SWEEP_COLUMNS) + " |", "|" + "---|" * len(SWEEP_COLUMNS)]
    for b in r["boards"]:
        cells = [_cell(c) for c in _sweep_cells(b)]
        if _has_report(b):
            cells[0] = f"[{cells[0]}]({b['board']}/report.md)"
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    note = sweep_budget_note(r["boards"])
    if note:
        out += [note, ""]
    if any(_has_report(b) and b.get("winner") for b in r["boards"]):
        out += ["![each board's winner against its budgets](sweep.png)", ""]
    return "\n".join(out)


def render_sweep_html(r: dict[str, Any]) -> str:
    e = html.escape
    title = f"tinynas sweep: {r['dataset']} over {len(r['boards'])} boards"
    parts = ["<!doctype html><html><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}</style>",
             "</head><body>", f"<h1>{e(title)}</h1>"]
    parts += [f"<p>{e(paragraph)}</p>" for paragraph in _sweep_paragraphs(r)]
    parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in SWEEP_COLUMNS) + "</tr>")
    for b in r["boards"]:
        cells = [e(c) for c in _sweep_cells(b)]
        if _has_report(b):
            cells[0] = f"<a href='{e(b['board'])}/report.html'>{cells[0]}</a>"
        parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    note = sweep_budget_note(r["boards"])
    if note:
        parts.append(f"<p>{e(note)}</p>")
    if any(_has_report(b) and b.get("winner") for b in r["boards"]):
        parts.append("<img src='sweep.png' alt=\"each board's winner against its budgets\" style='max-width:100%'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def plot_sweep(r: dict[str, Any], path: Path) -> bool:
    """Each board's winner: its int8 accuracy, and how much of the board's arena, flash and latency budget it
    takes (which budget binds where). False, and no file, when no board has a winner."""
    rows = [b for b in r["boards"] if _has_report(b) and b.get("winner")]
    if not rows:
        path.unlink(missing_ok=True)
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [b["board"] for b in rows]
    x = np.arange(len(rows))
    fig, (acc_ax, use_ax) = plt.subplots(1, 2, figsize=(max(9.0, 1.6 * len(rows) + 4), 4.2))
    accuracy = [shown_accuracy(b) for b in rows]
    acc_ax.bar(x, [a or 0.0 for a in accuracy], color="tab:blue")
    for i, a in enumerate(accuracy):
        if a is not None:
            acc_ax.text(i, a, f"{a:.3f}", ha="center", va="bottom", fontsize=8)
    low = min([a for a in accuracy if a is not None] or [0.0])
    acc_ax.set_ylim(max(0.0, low - 0.1), 1.0)
    acc_ax.set_ylabel("deployed model's test accuracy (val. where not deployed)")
    for k, (key, budget, label) in enumerate((("arena_bytes", "sram_budget_bytes", "arena / memory"),
                                              ("flash_bytes", "flash_budget_bytes", "flash / model file"),
                                              ("latency_ms", "latency_target_ms", "latency"))):
        shares = [100.0 * b[key] / b["budgets"][budget]
                  if b.get(key) is not None and (b.get("budgets") or {}).get(budget) else 0.0 for b in rows]
        use_ax.bar(x + (k - 1) * 0.27, shares, width=0.27, label=label)
    use_ax.axhline(100.0, color="tab:red", lw=1)
    use_ax.set_ylabel("share of the board's budget (%)")
    use_ax.legend(fontsize=8)
    for ax in (acc_ax, use_ax):
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{r['space']} on {r['dataset']} ({r['strategy']}): each board's winner")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return True


def rebuild(path: str | Path) -> dict[str, Any]:
    """``tinynas report DIR``: the report of a run or a sweep, whichever ``path`` holds."""
    path = Path(path)
    if (path / "sweep_state.json").is_file():
        return write_sweep_report(path)
    if (path / "config.toml").is_file():
        return write_report(path)
    raise SearchError(f"{path} is neither a tinynas run (config.toml) nor a sweep (sweep_state.json); "
                      "pass the --out of a run or sweep")
