"""``search`` and ``run``: the pipeline from a board and a dataset to a searched, trained and deployed model.

``search`` = prefilter (staged only) -> search -> final training -> winner -> report.
``run`` adds the int8 deployment of the winner (tinynas.deploy: quantize, TFLM
validation, C arrays, firmware project) before the report. Both resume a killed run.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tinynas.errors import DoesNotFitError, SearchError, TinyNASError
from tinynas.pipeline.constraints import CostCheck, require_feasible
from tinynas.pipeline.evaluate import WorkerSpec, make_evaluator
from tinynas.pipeline.rundir import RunDir, atomic_write_json
from tinynas.pipeline.settings import RunSettings, cache_dir_for, config_for, resolve
from tinynas.pipeline.stages import DRIVER_LOCK, StageContext, run_stages, stage_plan

log = logging.getLogger(__name__)

# the C sources a microcontroller deploy writes (a front end only for a model trained on a WAV or image folder)
DEPLOY_FILES = ("model_data.h", "model_data.cc", "op_resolver.h", "audio_frontend.h", "audio_frontend.c",
                "image_frontend.h", "image_frontend.c")


@dataclass(frozen=True)
class RunResult:
    """Where a run lives and its summary (the content of ``summary.json``)."""

    out_dir: Path
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), **self.summary}


def search(*, settings: RunSettings, out: str | Path, dataset: Any = None,
           on_candidate: Callable[[dict[str, Any]], None] | None = None,
           shared: list[dict[str, Any]] | None = None) -> RunResult:
    """Search ``settings.space`` for the most accurate arch that fits ``settings.profile``; no deployment.

    Writes the run directory ``out`` (config.toml, journal.jsonl, stages/,
    model/model.keras, summary.json, report.md/html, pareto.png). Running it
    again with the same settings resumes; other settings in the same ``out``
    raise SearchError. Ctrl-C saves everything and re-raises KeyboardInterrupt.
    """
    return _pipeline(settings=settings, out=out, deploy=False, dataset=dataset, on_candidate=on_candidate,
                     shared=shared)


def run(*, settings: RunSettings, out: str | Path, dataset: Any = None,
        on_candidate: Callable[[dict[str, Any]], None] | None = None,
        shared: list[dict[str, Any]] | None = None) -> RunResult:
    """``search`` plus the int8 deployment of the winner: ``model/model_int8.tflite`` and
    ``model/metrics.json``, ``deploy/`` C sources, ``firmware/<template>/``, and the report.

    If TFLite Micro says the winner does not fit after all (the cost model was
    wrong), the next final candidate is deployed; DoesNotFitError when none fits.
    """
    return _pipeline(settings=settings, out=out, deploy=True, dataset=dataset, on_candidate=on_candidate,
                     shared=shared)


def _smaller_input(dataset: Any) -> str:
    """How the input of ``dataset`` gets smaller, for the error when nothing fits: pictures as large as a
    camera takes them fit no microcontroller, and an image folder's option is the fix."""
    images = getattr(dataset, "image_front_end", None)
    if images is None:
        return "a smaller input"
    size = f"{images.height}x{images.width}"
    if images.resized:
        return f"a smaller -o image_size than the {size} given"
    return f"a smaller input: -o image_size=32 resizes the {size} pictures (or 64, 96: the side in pixels)"


def _pipeline(*, settings: RunSettings, out: str | Path, deploy: bool, dataset: Any,
              on_candidate: Callable[[dict[str, Any]], None] | None,
              shared: list[dict[str, Any]] | None) -> RunResult:
    from tinynas.pipeline.report import write_report

    started = time.monotonic()
    resolved = resolve(settings, dataset=dataset)
    check = CostCheck(space=resolved.space, profile=resolved.profile)
    # before creating anything: a clear error, no work lost
    require_feasible(check, seed=int(settings.seed), given=settings.constraints(),
                     smaller_input=_smaller_input(resolved.dataset))
    if deploy:
        from tinynas.deploy.firmware import check_board_template

        space = resolved.space
        check_board_template(resolved.profile, settings.template, op_kinds=sorted(space.ops_in_every_arch),
                             used_by=f"every arch of space {space.name!r}")
    out = Path(out)
    spec = WorkerSpec(dataset=settings.dataset, dataset_seed=int(settings.seed), space=settings.space,
                      input_shape=tuple(resolved.dataset.input_shape),
                      num_classes=int(resolved.dataset.num_classes), cache_dir=str(cache_dir_for(settings, out)),
                      dataset_options=tuple(sorted(settings.dataset_options.items())))
    # Connecting to a cluster can fail (unreachable, no tinynas there): before the run directory is touched.
    with make_evaluator(backend=settings.backend, spec=spec, workers=int(settings.workers), dataset=resolved.dataset,
                        address=settings.ray_address) as evaluator, \
            RunDir.open(out, config=config_for(resolved)) as rd:
        ctx = StageContext(run=rd, resolved=resolved, check=check, evaluator=evaluator,
                           progress=bool(settings.progress), on_candidate=on_candidate, shared=list(shared or []))
        verify = settings.strategy == "ofa" and resolved.strategy_hyper.get("score") == "predictor"
        names = stage_plan(settings.strategy, refine=settings.refine, verify=verify) + (["deploy"] if deploy else [])
        try:
            run_stages(ctx, names)
        except BaseException as exc:
            # Ctrl-C or a failed stage: count this session's time, show what was finished
            _end_session(rd, started=started, deploy=deploy, ended=type(exc).__name__)
            _report_anyway(rd.path)
            raise
        _end_session(rd, started=started, deploy=deploy, ended="finished")
        with DRIVER_LOCK:
            summary = write_report(rd.path)
    return RunResult(out_dir=out, summary=summary)


def _end_session(rd: RunDir, *, started: float, deploy: bool, ended: str) -> None:
    """Journal this invocation's wall time, so a report's wall time adds up across interruptions."""
    try:
        rd.journal.append({"type": "session", "seconds": round(time.monotonic() - started, 3),
                           "kind": "run" if deploy else "search", "ended": ended})
    except OSError as exc:  # a full disk must not hide the error that ended the session
        log.warning("could not journal the session's time in %s: %s", rd.path, exc)


def _report_anyway(path: Path) -> None:
    from tinynas.pipeline.report import write_report

    try:
        with DRIVER_LOCK:
            write_report(path)
    except Exception as exc:  # the original error matters more than a report of a broken run
        log.info("no report for the unfinished run in %s (%s)", path, exc)


# -- the deploy stage -----------------------------------------------------------------------------
def _register_deploy() -> None:
    from tinynas.pipeline.stages import STAGES

    if "deploy" not in STAGES:
        STAGES.add("deploy", deploy_stage)


def deploy_stage(ctx: StageContext) -> dict:
    """Deploy the final candidates best first until one fits (in TFLite Micro, LiteRT or ONNX Runtime,
    by the profile's kind); copy the artifacts into the run's ``model/``, ``deploy/`` and ``firmware/``.

    The int8 model, its TFLM accuracy and its arena depend on the trained model, not on the board:
    when another run on the same cache (another board of a sweep) deployed the same model file,
    its deploy is reused and only the budget check and the firmware are redone (``deploy.redeploy``),
    provided it was asked for the same QAT (``RunSettings.qat``).
    """
    from tinynas.deploy.deployer import deploy, redeploy

    run = ctx.run
    ranked = (run.stage_done("final") or {}).get("ranked", [])
    sdir = run.stage_dir("deploy")
    index = Path(ctx.evaluator.spec.cache_dir) / "deploys"
    qat = "auto" if ctx.settings.qat is None else bool(ctx.settings.qat)
    failures = []
    for arch_id in ranked:
        out_dir = sdir / arch_id
        model_path = run.path / "stages" / "final" / f"{arch_id}.keras"
        sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
        # Only MCU deploys are shared between boards: a mobile or GPU deploy validates in its own runtime.
        mcu = ctx.resolved.profile.kind == "mcu"
        earlier = _earlier_deploy(index / f"{sha}.json", sha=sha, out_dir=out_dir,
                                  dataset=ctx.resolved.dataset, qat=qat) if mcu else None
        try:
            if earlier is not None:
                result = redeploy(earlier, source=model_path, profile=ctx.resolved.profile,
                                   dataset=ctx.resolved.dataset, out_dir=out_dir, template=ctx.settings.template)
            else:
                result = deploy(model_path=model_path, profile=ctx.resolved.profile, dataset=ctx.resolved.dataset,
                                out_dir=out_dir, template=ctx.settings.template, model_id=arch_id, qat=qat)
        except DoesNotFitError as exc:
            if mcu:  # written complete, "fits": false; reusable by a roomier board
                _remember(index / f"{sha}.json", out_dir)
            log.warning("candidate %s does not fit once deployed: %s", arch_id, exc)
            failures.append({"id": arch_id, "error": str(exc)})
            run.journal.append({"type": "stage", "stage": "deploy", "event": "does_not_fit", "id": arch_id,
                                "error": str(exc)})
            continue
        if mcu:
            _remember(index / f"{sha}.json", out_dir)
        _publish(run, out_dir, arch_id)
        metrics = result.metrics
        return {"id": arch_id, "kind": metrics.get("kind", "mcu"), "template": metrics.get("template"),
                "int8_accuracy": metrics.get("int8_accuracy"),
                "float_accuracy": metrics.get("float_accuracy"), "arena_bytes": metrics.get("arena_bytes"),
                "flash_bytes": metrics.get("flash_bytes"), "fits": metrics.get("fits"), "qat": metrics.get("qat"),
                "tensor_names_stripped_bytes": metrics.get("tensor_names_stripped_bytes"),
                "reused_from": metrics.get("reused_from"), "front_end": metrics.get("front_end"),
                "test_samples": metrics.get("num_test_samples"), "splits": ctx.resolved.dataset.splits or None,
                "did_not_fit": failures,
                "artifacts": {name: {"accuracy": a.get("accuracy"), "runtime": a.get("runtime"),
                                     "max_abs_diff": a.get("max_abs_diff"), "file_bytes": a.get("file_bytes"),
                                     "runtime_bytes": a.get("runtime_bytes")}
                              for name, a in (metrics.get("artifacts") or {}).items()} or None}
    raise DoesNotFitError(
        f"none of the {len(ranked)} final candidates fits {ctx.resolved.profile.id} once deployed "
        f"({'; '.join(f['error'] for f in failures)}); the deploy outputs are in {sdir}"
    )


def _remember(entry: Path, out_dir: Path) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(entry, {"out_dir": str(out_dir.resolve())})


def _earlier_deploy(entry: Path, *, sha: str, out_dir: Path, dataset: Any, qat: Any) -> Any:
    """The finished deploy of the model file with SHA-256 ``sha`` on ``dataset``, asked for the same ``qat``,
    recorded in ``entry`` by another run (None when there is none, it is gone, or it is ``out_dir`` itself)."""
    from tinynas.deploy.deployer import TOOL_MARK, DeployResult
    from tinynas.pipeline.rundir import read_json

    recorded = (read_json(entry) or {}).get("out_dir")
    if not recorded or Path(recorded) == out_dir.resolve():
        return None
    try:
        earlier = DeployResult.load(Path(recorded))
    except TinyNASError:
        return None
    m = earlier.metrics
    same_data = (m.get("dataset") or {}).get("fingerprint") == getattr(dataset, "fingerprint", None)
    same_qat = (m.get("qat") or {}).get("requested") == qat
    if m.get("tool") != TOOL_MARK or (m.get("source") or {}).get("sha256") != sha or not same_data \
            or not same_qat or m.get("kind", "mcu") != "mcu" or not earlier.model_path.is_file():
        return None
    return earlier


def _publish(run: RunDir, out_dir: Path, arch_id: str) -> None:
    """Copy one deploy output into the run's public layout (model/, deploy/, firmware/).

    MCU: model_int8.tflite to model/, the C sources (``DEPLOY_FILES``) to deploy/, firmware/.
    Mobile and GPU: what metrics.json's ``publish`` lists (the .tflite or .onnx models to
    model/; the runner files, with the models they open, to deploy/).
    """
    from tinynas.pipeline.rundir import read_json

    model_dir = run.path / "model"
    model_dir.mkdir(exist_ok=True)
    shutil.copyfile(run.path / "stages" / "final" / f"{arch_id}.keras", model_dir / "model.keras")
    publish = (read_json(out_dir / "metrics.json") or {}).get("publish") or {}
    model_files = list(publish.get("model") or ["model_int8.tflite"])
    deploy_files = list(publish.get("deploy") or DEPLOY_FILES)
    for name in [*model_files, "metrics.json"]:
        shutil.copyfile(out_dir / name, model_dir / name)
    dep = run.path / "deploy"
    dep.mkdir(exist_ok=True)
    for name in deploy_files:
        if (out_dir / name).is_file():
            shutil.copyfile(out_dir / name, dep / name)
    if (out_dir / "firmware").is_dir():
        target = run.path / "firmware"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(out_dir / "firmware", target)
    arch = next((e["arch"] for e in run.journal.candidates(stage="final") if e["id"] == arch_id), None)
    if arch is not None:  # the genotype, as `tinynas train` and `tinynas space` read it
        atomic_write_json(model_dir / "arch.json", arch)


_register_deploy()


def load_result(out: str | Path) -> RunResult:
    """A finished run's summary (SearchError when ``out`` has none yet)."""
    from tinynas.pipeline.rundir import read_json

    summary = read_json(Path(out) / "summary.json")
    if summary is None:
        raise SearchError(f"{out} has no summary.json: the run has not finished; run the same command again")
    return RunResult(out_dir=Path(out), summary=summary)
