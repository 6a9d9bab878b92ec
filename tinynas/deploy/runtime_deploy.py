"""The deploy of ``mobile`` and ``gpu`` profiles: the artifacts their runtime loads, checked in that runtime.

``deployer.deploy`` hands a non-MCU profile here. ``mobile`` (LiteRT with XNNPACK)
gets ``model_int8.tflite`` and ``model_fp16.tflite``, each validated in LiteRT,
plus ``run_litert.py`` and ``RUN_ANDROID.md``; ``gpu`` gets ``model_fp32.onnx``
and ``model_fp16.onnx``, validated in ONNX Runtime, plus ``build_trt_engine.sh``.
No C arrays and no firmware. Every file is staged and installed like an MCU deploy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.errors import DeployError, DoesNotFitError
from tinynas.hardware.profile import HardwareProfile

log = logging.getLogger(__name__)

#: Per kind: the file the run's model/ folder and DeployResult.model_path point at first.
PRIMARY = {"mobile": "model_int8.tflite", "gpu": "model_fp32.onnx"}
#: Per kind: what a deploy writes, in words (``profiles show``).
WRITES = {"mobile": "model_int8.tflite and model_fp16.tflite, checked in LiteRT; run_litert.py, RUN_ANDROID.md",
          "gpu": "model_fp32.onnx and model_fp16.onnx, checked in ONNX Runtime; build_trt_engine.sh (TensorRT)"}


def _budget_checks(artifacts: dict[str, dict[str, Any]], profile: HardwareProfile) -> list[dict[str, Any]]:
    """Each artifact's runtime memory against the RAM budget and its file against the storage budget."""
    checks = []
    for name, a in artifacts.items():
        for check, need, budget in (("sram", a["runtime_bytes"], profile.sram_budget_bytes),
                                    ("flash", a["file_bytes"], profile.flash_budget_bytes)):
            fits = int(need) <= int(budget)
            a.setdefault("checks", []).append({"name": check, "need": int(need), "budget": int(budget), "fits": fits})
            checks.append({"artifact": name, "name": check, "need": int(need), "budget": int(budget), "fits": fits})
        a["fits"] = all(c["fits"] for c in a["checks"])
    return checks


def _not_fit_message(checks: list[dict[str, Any]], *, profile: HardwareProfile, where: Path) -> str:
    lines = [f"the deployed models do not fit {profile.id} ({profile.name}):"]
    for c in checks:
        if not c["fits"]:
            what = "runtime memory" if c["name"] == "sram" else "file size"
            lines.append(f"  {c['artifact']}: {what} {c['need']:,} B, budget {c['budget']:,} B; "
                         f"over by {c['need'] - c['budget']:,} B")
    lines.append(f"The artifacts were written to {where} (metrics.json has \"fits\": false).")
    lines.append(f"Fix: pick a smaller model (e.g. `tinynas search --profile {profile.id}`) or a roomier profile.")
    return "\n".join(lines)


_FIX_FLOAT_OP = ("replace that layer with one that has an int8 TFLite kernel, or deploy for a 'gpu' profile "
                 "(ONNX fp32/fp16)")


def _int8_only(keras_model: Any, *, model_path: Path, x_rep: np.ndarray, representative_samples: int) -> bytes:
    """Full-integer int8 bytes of ``keras_model``; DeployError naming the op when a layer has no int8 kernel,
    whether the converter fails or (as it does for ops such as SIN) silently leaves it in float."""
    import re

    from tinynas.deploy.litert import float_ops
    from tinynas.deploy.quantize import quantize_int8

    try:
        int8 = quantize_int8(keras_model, representative=x_rep, num_samples=representative_samples)
    except DeployError as exc:
        text = str(exc.__cause__ or exc)
        ops = sorted(set(re.findall(r"'?tf\.(\w+)'? op", text))) or ["(unnamed by the converter)"]
        raise DeployError(f"{model_path}: the int8 conversion failed: no int8 TFLite kernel for op "
                          f"{', '.join(ops)}; {_FIX_FLOAT_OP}") from None
    floats = float_ops(int8, source=f"{model_path} -> model_int8.tflite")
    if floats:
        raise DeployError(f"{model_path}: the int8 model would compute {', '.join(floats)} in float "
                          f"(no int8 kernel); {_FIX_FLOAT_OP}")
    return int8


def deploy_runtime(*, keras_model: Any, model_path: Path, profile: HardwareProfile, dataset: Any, out_dir: Path,
                   x_test: np.ndarray, y_test: np.ndarray, x_rep: np.ndarray, metrics: dict[str, Any],
                   keep: tuple[Path, ...], representative_samples: int) -> Any:
    """Build, validate and install the artifacts of a ``mobile`` or ``gpu`` profile; returns a DeployResult.

    ``metrics``: the kind-independent part of metrics.json (tool, source, profile,
    dataset), completed here. Raises DeployError (conversion failed, e.g. a
    float-only op in the int8 model), ModelFileError (the runtime cannot load the
    result) before anything is written, and DoesNotFitError after writing.
    """
    from tinynas.deploy.deployer import keras_outputs, scaling_text

    kind = profile.kind
    if kind not in PRIMARY:
        raise DeployError(f"{profile.source_path or profile.id}: kind {kind!r} has no runtime deploy; "
                          f"expected one of {sorted(PRIMARY)}")
    keras_probs = keras_outputs(keras_model, x_test).astype(np.float32)
    keras_probs = keras_probs.reshape(len(y_test), -1)
    float_acc = float(np.mean(keras_probs.argmax(axis=1) == y_test))
    sample_shape = tuple(int(d) for d in x_test.shape[1:])
    class_names = [str(c) for c in dataset.class_names]
    scaling = scaling_text(dataset)
    files: dict[str, bytes | str] = {}
    artifacts: dict[str, dict[str, Any]] = {}
    if kind == "mobile":
        from tinynas.deploy.litert import check_litert, quantize_fp16
        from tinynas.deploy.runners import ANDROID_README, LITERT_RUNNER, android_readme, litert_runner

        threads = profile.runtime_threads
        int8 = _int8_only(keras_model, model_path=model_path, x_rep=x_rep,
                          representative_samples=representative_samples)
        fp16 = quantize_fp16(keras_model, sample_shape=sample_shape)
        for name, data, precision in (("model_int8.tflite", int8, "int8"), ("model_fp16.tflite", fp16, "fp16")):
            check = check_litert(data, file=f"{model_path} -> {name}", x=x_test, y=y_test, keras_probs=keras_probs,
                                 threads=threads)
            artifacts[name] = {**check.to_json(), "file": name, "precision": precision,
                               "sha256": hashlib.sha256(data).hexdigest()}
            files[name] = data
        model_id = metrics.get("model_id") or hashlib.sha1(int8).hexdigest()[:12]
        files[LITERT_RUNNER] = litert_runner(profile_id=profile.id, class_names=class_names, input_shape=sample_shape,
                                             threads=threads, model_id=model_id, input_scaling=scaling)
        files[ANDROID_README] = android_readme(profile_id=profile.id, profile_name=profile.name, model_id=model_id,
                                               models=list(artifacts), threads=threads, input_shape=sample_shape,
                                               input_scaling=scaling)
        runners = [LITERT_RUNNER, ANDROID_README]
        int8_acc = artifacts["model_int8.tflite"]["accuracy"]
        extra = {"threads": threads, "int8_sha256": artifacts["model_int8.tflite"]["sha256"]}
    else:
        import onnx

        from tinynas.deploy.onnx_export import check_onnx, export_onnx, to_fp16
        from tinynas.deploy.runners import TRTEXEC_SCRIPT, trtexec_script

        fp32 = export_onnx(keras_model, sample_shape=sample_shape)
        for name, precision in (("model_fp32.onnx", "fp32"), ("model_fp16.onnx", "fp16")):
            # the fp32 model is checked first: a model ONNX Runtime rejects fails here, before the fp16 pass
            data = fp32 if precision == "fp32" else to_fp16(fp32, source=str(model_path))
            check = check_onnx(data, file=f"{model_path} -> {name}", precision=precision, x=x_test, y=y_test,
                               keras_probs=keras_probs)
            artifacts[name] = {**check.to_json(), "file": name, "sha256": hashlib.sha256(data).hexdigest()}
            files[name] = data
        model_id = metrics.get("model_id") or hashlib.sha1(fp32).hexdigest()[:12]
        input_name = onnx.load_from_string(fp32).graph.input[0].name
        files[TRTEXEC_SCRIPT] = trtexec_script(profile_name=profile.name, model_id=model_id, input_name=input_name,
                                               input_shape=sample_shape)
        runners = [TRTEXEC_SCRIPT]
        int8_acc = None
        extra = {"onnx_input_name": input_name,
                 "fp16_conversion": "float16 initializers, constants and compute, with a Cast after the float32 "
                                    "input and before the float32 output (written by tinynas; no "
                                    "onnxconverter-common)"}

    checks = _budget_checks(artifacts, profile)
    fits = all(c["fits"] for c in checks)
    primary = PRIMARY[kind]
    metrics.update({
        "kind": kind,
        "model_id": model_id,
        "float_accuracy": float_acc,
        # "int8_accuracy" keeps its meaning (None where no int8 model is deployed) for reports and sweeps
        "int8_accuracy": int8_acc,
        "accuracy_drop": None if int8_acc is None else float_acc - int8_acc,
        "primary_accuracy": artifacts[primary]["accuracy"],
        "num_test_samples": int(len(y_test)),
        "arena_bytes": max(a["runtime_bytes"] for a in artifacts.values()),
        "flash_bytes": max(a["file_bytes"] for a in artifacts.values()),
        "memory_measure": artifacts[primary]["runtime_bytes_measure"],
        "sram_budget_bytes": profile.sram_budget_bytes,
        "flash_budget_bytes": profile.flash_budget_bytes,
        "fits": fits,
        "checks": checks,
        "qat": {"requested": metrics.get("qat", {}).get("requested", "auto"), "applied": False, "used": False,
                "note": "runtime deploys use post-training quantization only"},
        "template": None,
        "primary": primary,
        "artifacts": artifacts,
        "runners": runners,
        # deploy/ is the folder one copies to the target: the runners open the models beside them
        "publish": {"model": list(artifacts), "deploy": [*artifacts, *runners]},
        **extra,
    })
    result = _install(out_dir=out_dir, files=files, metrics=metrics, keep=keep)
    if not fits:
        raise DoesNotFitError(_not_fit_message(checks, profile=profile, where=out_dir))
    return result


def _install(*, out_dir: Path, files: dict[str, bytes | str], metrics: dict[str, Any],
             keep: tuple[Path, ...]) -> Any:
    """Stage every file in a sibling temp folder, then move them into ``out_dir`` (metrics.json last)."""
    from tinynas.deploy.deployer import METRICS_FILE, DeployResult, _previous_deploy
    from tinynas.deploy.outdir import install_files, staged_files

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        for name, data in files.items():
            if isinstance(data, bytes):
                (tmp / name).write_bytes(data)
            else:
                (tmp / name).write_text(data)
            if name.endswith((".py", ".sh")):
                (tmp / name).chmod(0o755)
        metrics["files"] = staged_files(tmp) + [METRICS_FILE]
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        previous = _previous_deploy(out_dir) if out_dir.is_dir() else None
        install_files(staged=tmp, out_dir=out_dir, previous=(previous or {}).get("files", ()),
                      marker=METRICS_FILE, keep=keep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s deploy written to %s", metrics["kind"], out_dir)
    return DeployResult(out_dir=out_dir, model_path=out_dir / metrics["primary"], metrics=metrics,
                        files=tuple(metrics["files"]))
