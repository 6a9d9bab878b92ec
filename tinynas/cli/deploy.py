"""``tinynas deploy``: quantize a trained model to int8, check it in TFLite Micro, write C sources and firmware.

A thin wrapper over ``tinynas.deploy.deployer.deploy``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import click

from tinynas.cli.common import echo_json, qat_option
from tinynas.cli.datasets import dataset_option, typed_options

log = logging.getLogger(__name__)


@click.command("deploy")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--profile", "-p", "profile_id", required=True, help="Board id (`tinynas profiles list`) or a profile .toml.")
@click.option("--dataset", "dataset_name", default=None,
              help="The dataset the model was trained on (name, path or URL); its test split measures accuracy "
                   "(default: the dataset and -o options of the run or `tinynas train` that saved MODEL).")
@dataset_option()
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output folder. Other files there (the model, notes) are left as they are; an earlier "
                   "deploy of the same model is replaced; a name clash is refused.")
@click.option("--template", default=None, help="Firmware template (default: the profile's own).")
@qat_option
@click.option("--seed", default=None, type=int,
              help="Dataset split seed used in training (default: the seed of the run or `tinynas train` that "
                   "saved MODEL: the run's config.toml, or the MODEL.keras.json train writes; else 0).")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json to stdout.")
def deploy(model: Path, profile_id: str, dataset_name: str | None, options: tuple[str, ...], out_dir: Path,
           template: str | None, qat: bool | None, seed: int | None, as_json: bool) -> None:
    """Quantize MODEL (.keras, a legacy .h5, or a quantized .tflite) for a board; write all to --out.

    A .tflite is used as it is, except that a float32 or uint8 input and output (TFLiteConverter's
    default) become the int8 tensors inside, so the firmware feeds int8.

    Microcontrollers: model_int8.tflite, model_data.h, model_data.cc, op_resolver.h,
    firmware/<template>/ and metrics.json (float and int8 accuracy,
    arena_bytes, flash_bytes, fits, and float_ops: any op the converter left in float).
    Mobile profiles: int8 and fp16 .tflite checked in LiteRT, run_litert.py and RUN_ANDROID.md;
    GPU profiles: fp32 and fp16 .onnx checked in ONNX Runtime and build_trt_engine.sh (both need the .keras model).
    A model that does not fit the board is still written (fits: false) and the command exits 1 listing each budget.
    --out may be the model's own folder: files deploy did not write stay untouched.
    """
    from tinynas.data import load_dataset
    from tinynas.deploy.deployer import DeployResult, deploy as run_deploy
    from tinynas.errors import DatasetError, DeployError, DoesNotFitError
    from tinynas.hardware import load_profile
    from tinynas.train.provenance import provenance_of

    profile = load_profile(profile_id)
    trained = provenance_of(model)
    if trained is not None and seed is not None and seed != trained.seed:
        raise DeployError(f"{model}: {trained.source} trained it with split seed {trained.seed}; --seed {seed} "
                          f"splits the dataset otherwise, so the test accuracy would count samples the model "
                          f"trained on. Leave --seed out (or give --seed {trained.seed})")
    if seed is None:
        seed = 0 if trained is None else trained.seed
    defaulted = None  # the dataset the model's run or train record names, when --dataset is left out
    if dataset_name is not None:
        dataset = load_dataset(dataset_name, seed=seed, **typed_options(dataset_name, options))
    elif trained is None or trained.given is None:
        raise click.UsageError(f"give --dataset: nothing beside {model} says which dataset it was trained on (a run's "
                               "config.toml or the MODEL.keras.json `tinynas train` writes)")
    elif options:
        raise click.UsageError(f"-o goes with --dataset; without it deploy loads {trained.given} with the options "
                               f"{trained.source} used")
    else:
        dataset_name = trained.given
        try:
            dataset = load_dataset(dataset_name, seed=seed, **trained.options)
        except DatasetError as exc:
            raise DatasetError(f"{model}: {trained.source} trained it on {dataset_name!r}, which does not load from "
                               f"here ({exc}); give --dataset") from None
        defaulted = f"{dataset_name}" + "".join(f" -o {k}={v}" for k, v in trained.options.items())
    if trained is not None and trained.fingerprint and dataset.fingerprint != trained.fingerprint:
        log.warning("%s: %s trained it on %s (fingerprint %s); --dataset %s%s gives other data or splits "
                    "(fingerprint %s): the test accuracy may count samples it trained on", model, trained.source,
                    trained.dataset, trained.fingerprint[:12], dataset_name, "".join(f" -o {o}" for o in options),
                    dataset.fingerprint[:12])
    try:
        # TensorFlow's converter prints progress with print(); keep stdout for the result (--json).
        with contextlib.redirect_stdout(sys.stderr):
            result = run_deploy(model_path=model, profile=profile, dataset=dataset, out_dir=out_dir,
                                template=template, qat="auto" if qat is None else qat)
    except DoesNotFitError:
        if as_json:
            echo_json(DeployResult.load(out_dir.resolve()).metrics)
        raise
    m = result.metrics
    if as_json:
        echo_json(m)
        return
    if m.get("artifacts"):  # mobile and gpu profiles: LiteRT or ONNX artifacts
        _echo_runtime(model, result.out_dir, m)
        return
    float_acc = "n/a (int8 .tflite given)" if m["float_accuracy"] is None else f"{100 * m['float_accuracy']:.2f} %"
    click.echo(f"deployed {model} for {m['profile_id']} into {result.out_dir}")
    if defaulted:
        click.echo(f"  dataset: {defaulted} (what {trained.source} trained it on)")
    _echo_adaptation(m["dataset"], front_end="image_frontend.c" in m.get("files", ()))
    _echo_binary(m)
    removed = m["source"].get("interface_removed")
    if removed:
        click.echo(f"  interface: the model's {removed['input_was']} input and {removed['output_was']} output "
                   f"became the int8 tensors inside ({' and '.join(removed['removed_ops'])} removed)")
    click.echo(f"  accuracy: float {float_acc}, int8 in TFLite Micro {100 * m['int8_accuracy']:.2f} % "
               f"({m['num_test_samples']} test samples)"
               + (", after QAT" if m["qat"].get("used") else ""))
    if m.get("int8_error_ops"):
        ops = ", ".join(f"{op['op']} {op['tensor']!r} {op['error_steps']:g}" for op in m["int8_error_ops"])
        click.echo(f"  int8 error: the ops furthest from float, in int8 steps (rounding alone: 0.3): {ops}; int8 "
                   "loses accuracy in the layers they belong to (LayerNormalization on large values, for one: "
                   "BatchNormalization folds into the convolution before it instead)")
    click.echo(f"  arena {m['arena_bytes']:,} B of {m['sram_budget_bytes']:,} B SRAM budget; "
               f"model {m['flash_bytes']:,} B of {m['flash_budget_bytes']:,} B flash budget"
               + (f" ({m['tensor_names_stripped_bytes']:,} B of tensor names stripped)"
                  if m.get("tensor_names_stripped_bytes") else ""))
    if m.get("float_ops"):
        click.echo(f"  float ops: {', '.join(m['float_ops'])} (no int8 kernel: they run in float on the board)")
    if m.get("template"):
        click.echo(f"  firmware: {result.out_dir / 'firmware' / m['template']}")
    from tinynas.deploy.codegen import FRONT_ENDS, front_end_ram_text

    for name, (what, source) in FRONT_ENDS.items():
        if name in m.get("files", ()):
            ram = front_end_ram_text(m.get("front_end"))
            click.echo(f"  {name.split('_')[0]} front end ({what}, from {source}): {result.out_dir / name}"
                       + (f"; {ram}" if ram else ""))


def _echo_adaptation(dataset: dict, *, front_end: bool = False) -> None:
    """Say when the test data were resized to the model's input: accuracy is then measured on what the
    firmware only sees if it resizes too (the image front end, when one was written, does), and a dataset
    option left out (-o image_size=...) shows here."""
    if not dataset.get("adapted_to_model"):
        return
    from tinynas.train.inputs import check_input_shape

    given, taken = tuple(dataset["input_shape"]), tuple(dataset["model_input_shape"])
    if check_input_shape(given, taken, dataset=dataset["name"]) == "reshape":
        click.echo(f"  input: {dataset['name']} gives {given}, the model takes {taken}: the same values, "
                   "reshaped as in training")
    else:
        if front_end:
            how = "the image front end does the same"
        elif dataset.get("resized_by"):
            how = f"{dataset['resized_by']} does the same on the board"
        else:
            how = "the firmware must do the same (or deploy with the dataset options the model was trained with, " \
                  "-o KEY=VALUE)"
        click.echo(f"  input: {dataset['name']} gives {given}, the model takes {taken}: resized (bilinear) as in "
                   f"training; {how}")


def _echo_binary(m: dict) -> None:
    binary = m.get("binary_output")
    if binary:
        click.echo(f"  output: one {binary['output']} for class {binary['positive_class']!r} from "
                   f"layer {binary['layer']!r}, deployed as {binary['deployed_as']}: the top score is the class, "
                   "as p > 0.5")


def _echo_runtime(model: Path, out_dir: Path, m: dict) -> None:
    click.echo(f"deployed {model} for {m['profile_id']} ({m['kind']}) into {out_dir}")
    _echo_adaptation(m["dataset"])
    _echo_binary(m)
    click.echo(f"  float accuracy (Keras) {100 * m['float_accuracy']:.2f} % ({m['num_test_samples']} test samples)")
    for name, a in m["artifacts"].items():
        click.echo(f"  {name}: {100 * a['accuracy']:.2f} % in {a['runtime']}, max |p - p_keras| "
                   f"{a['max_abs_diff']:.2e}, top-1 agreement {100 * a['top1_agreement']:.2f} %, "
                   f"{a['file_bytes']:,} B file, {a['runtime_bytes']:,} B tensors")
    click.echo(f"  runners: {', '.join(str(out_dir / r) for r in m['runners'])}")
