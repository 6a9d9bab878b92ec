"""Progressive shrinking (Once-for-All, Cai et al. 2020, sec. 3.3): train the supernet phase by phase.

Phases: the full network; then elastic kernel; elastic depth (and the optional
head, stages may be left out); elastic expand ratio (expansions re-sorted by
importance first); elastic width and input resolution. Every phase samples
``subnets_per_step`` random subnets per step (forward passes traced once per block
signature, ``tinynas.ofa.compiled``), each learning from the labels (with label
smoothing) plus knowledge distillation from the full network as trained in phase
one (weight ``kd_weight``, Hinton et al. 2015), which sees the same images at the
native resolution.

Resolution is elastic only in the last phase, one random resolution per batch;
the earlier phases train at the input's native resolution. OFA samples it from the
start, but its resolutions (128-224) share one stride schedule, while here they
span 12-32 pixels (8-32 on digits) and change which layers downsample. Sampled
from the start, the full network did not learn (glyphs: loss at chance after 120
steps, 18 % accuracy, against loss 1.34 at one resolution) and elastic-kernel
subnets stayed at chance (digits: loss 9.1 -> 8.6 per step of 2 subnets, against
4.9 at the native resolution).

Stride shifts are rare: a left-out stage (depth 0) moves the stride-2 positions of
the later stages as another resolution does, and subnets whose stride pattern
(``plan.stride_pattern``) is not the full network's stayed near chance while the
others learned (digits, 60 steps/phase, after the depth phase: 0.14 against 0.65;
benchmarks/ofa/README.md). So only a share ``shift_prob`` of the elastic steps
draws subnets that may move them (and, in the width phase, a non-native
resolution); the other steps sample among subnets with the full network's pattern.

Each new dimension is anchored: with two or more subnets per step the first one
varies only the phase's own dimension (the others at their largest), the rest all
dimensions elastic so far (``isolate_new``). Sampling width jointly with depth,
kernel and expand left widths 0.1-0.2 at chance however long the phase ran
(digits: 240 width steps, loss flat at chance); a width-only subnet per step
brought them to 0.19-0.39 in 60 steps (README).

When depth becomes elastic, the supernet's predecessor input slots (the reader of a
stage's output after a left-out stage, ``supernet.ElasticMCUNet``) start as copies
of the shared ones and from then on train only on subnets with that gap
(``predecessor_inputs``, README (f)). Such a subnet is drawn in about a sixth of the
subnets, and Adam moves a weight by about the learning rate per update whatever
the gradient's size, so at the shared rate those slots barely left their copies
(digits, depth phase: mean |change| 0.016 against weights of 0.28; the stage-2 skips
stayed at 0.25); they learn at ``reader_lr_scale`` times the rate. An optional last
phase (``reader_epochs``) then trains only those slots, on width-phase subnets that
use one: no other subnet's weights move. Three options of that phase (README (g);
none raised tau on digits, so all default to off):
``reader_sampling="round_robin"`` cycles over the (reader, predecessor) pairs and
draws a subnet with that gap, so the rare ones (the head after stage 2, in about 1 %
of random subnets) get as many steps as the common ones; ``reader_body_lr_scale`` > 0
trains every weight, the rest at that factor of the readers' rate (the blocks after
the gap learned on the full network's features: training them too took a stage-2
skip from 0.85 to 0.91, README (f)), with the full network in every step so the
shared weights keep serving it; ``reader_phase_lr_scale`` sets the reader slots' rate
in that phase (1: the learning rate). On glyphs, where a stand-alone reference can
rank, round-robin with the body at 0.1 raised tau against it on three supernets
(README (t)); ``ShrinkingSchedule.with_readers_phase`` is that setting, the ofa
strategy's ``readers_phase``.

Adam with a cosine learning rate restarted per phase.

The schedule scales with the data (``ShrinkingSchedule.scaled``): a fixed number
of optimizer steps per phase, so a 10k-image set trains in minutes on 2 cores.
A checkpoint is written after every epoch and every phase; a killed training
resumes from the last one (Adam's moments restart), a corrupt checkpoint is reported and its phase
retrained from the end of the previous phase.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinynas.errors import SupernetError
from tinynas.ofa.cache import claim_dir, supernet_dir, supernet_meta
from tinynas.ofa.compiled import CompiledForward
from tinynas.ofa.plan import largest_archs, reader_gaps, shared_slot, stride_pattern, uses_gap
from tinynas.ofa.supernet import ElasticMCUNet, copy_variables, load_weights, save_weights
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.space.mcunet import DEPTHS, EXPANDS, KERNELS, STAGES

log = logging.getLogger(__name__)

PHASES = ("full", "kernel", "depth", "expand", "width")
READERS = "readers"  # the optional last phase (ShrinkingSchedule.reader_epochs); no epoch checkpoints
READER_SAMPLING = ("any", "round_robin")  # ShrinkingSchedule.reader_sampling
STATE_FILE = "checkpoint.json"
FINAL_FILE = "supernet.npz"
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7


@dataclass(frozen=True)
class ShrinkingSchedule:
    """Hyperparameters of progressive shrinking; part of the supernet's cache key."""

    epochs: tuple[int, ...] = (4, 2, 2, 2, 2)  # per phase, in PHASES order
    batch_size: int = 64
    subnets_per_step: int = 2
    learning_rate: float = 3e-3
    label_smoothing: float = 0.1
    kd_weight: float = 1.0
    max_width: float = 0.5
    max_train_samples: int | None = None
    seed: int = 0
    shift_prob: float = 0.25  # share of elastic steps whose subnets may move the stride-2 positions
    isolate_new: bool = True  # one subnet per step varies only the phase's new dimension
    predecessor_inputs: bool = True  # the op after a left-out stage has weights per predecessor stage
    reader_lr_scale: float = 12.0  # learning rate of those weights relative to the rest (module docstring)
    reader_epochs: int = 0  # a last phase training only those weights, on subnets with a left-out stage
    reader_sampling: str = "any"  # that phase's subnets: "any" with a gap, or "round_robin" over the gaps
    reader_body_lr_scale: float = 0.0  # > 0: that phase also trains the other weights, at this factor
    reader_phase_lr_scale: float = 1.0  # that phase's rate for the reader slots, relative to learning_rate

    def __post_init__(self) -> None:
        if len(self.epochs) != len(PHASES) or any(int(e) < 0 for e in self.epochs):
            raise SupernetError(f"shrinking schedule: epochs must give {len(PHASES)} counts >= 0 "
                                f"(phases {', '.join(PHASES)}), got {self.epochs}")
        if int(self.reader_epochs) < 0:
            raise SupernetError(f"shrinking schedule: reader_epochs must be >= 0, got {self.reader_epochs}")
        if self.reader_sampling not in READER_SAMPLING:
            raise SupernetError(f"shrinking schedule: reader_sampling must be one of {', '.join(READER_SAMPLING)}, "
                                f"got {self.reader_sampling!r}")
        if not float(self.reader_body_lr_scale) >= 0.0:
            raise SupernetError(f"shrinking schedule: reader_body_lr_scale must be >= 0 (0: the readers phase "
                                f"trains only the reader slots), got {self.reader_body_lr_scale}")
        if not float(self.reader_phase_lr_scale) > 0.0:
            raise SupernetError(f"shrinking schedule: reader_phase_lr_scale must be > 0 (a factor on the "
                                f"learning rate), got {self.reader_phase_lr_scale}")
        if not float(self.reader_lr_scale) > 0.0:
            raise SupernetError(f"shrinking schedule: reader_lr_scale must be > 0 (a factor on the learning "
                                f"rate), got {self.reader_lr_scale}")
        if not 0.0 <= float(self.shift_prob) <= 1.0:
            raise SupernetError(f"shrinking schedule: shift_prob must be within 0..1 (a share of steps), "
                                f"got {self.shift_prob}")
        if self.epochs[0] < 1:
            raise SupernetError("shrinking schedule: the full-network phase needs at least 1 epoch "
                                "(it is the distillation teacher)")

    @classmethod
    def scaled(cls, n_train: int, *, steps_per_phase: int = 300, batch_size: int = 64, **kw: Any) -> "ShrinkingSchedule":
        """A schedule of about ``steps_per_phase`` optimizer steps per phase for ``n_train`` samples
        (twice that for the full network, which every subnet learns from)."""
        per_epoch = max(1, math.ceil(n_train / batch_size))
        epochs = max(1, round(steps_per_phase / per_epoch))
        return cls(epochs=(2 * epochs,) + (epochs,) * (len(PHASES) - 1), batch_size=batch_size, **kw)

    def with_readers_phase(self) -> "ShrinkingSchedule":
        """This schedule with the readers phase that ranks best on glyphs (README (t)): as long as an
        elastic phase, round-robin over the gaps, every other weight at a tenth of the readers' rate."""
        return replace(self, reader_epochs=int(self.epochs[-1]), reader_sampling="round_robin",
                       reader_body_lr_scale=0.1)

    @property
    def total_epochs(self) -> int:
        """Epochs over all phases, the readers phase included where it runs."""
        return sum(int(e) for e in self.epochs) + (int(self.reader_epochs) if self.predecessor_inputs else 0)

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON (the cache key). ``predecessor_inputs`` (with the reader fields) appears only
        when set: without it the supernet is the one trained before the field existed, so those caches
        stay reusable; so do the readers phase's options, only with ``reader_epochs`` and away from
        their neutral values ("any", 0, 1)."""
        data = asdict(self)
        data["epochs"] = list(self.epochs)
        if not self.predecessor_inputs:
            del data["predecessor_inputs"], data["reader_lr_scale"]
        if not self.predecessor_inputs or not self.reader_epochs:
            # likewise supernets trained before the readers phase existed; without that phase
            # its options change nothing
            del data["reader_epochs"], data["reader_sampling"], data["reader_body_lr_scale"], \
                data["reader_phase_lr_scale"]
        else:  # at their neutral values, the readers-phase supernets trained before these options
            if self.reader_sampling == "any":
                del data["reader_sampling"]
            if not self.reader_body_lr_scale:
                del data["reader_body_lr_scale"]
            if self.reader_phase_lr_scale == 1.0:
                del data["reader_phase_lr_scale"]
        return data


@dataclass(frozen=True)
class EpochDone:
    """One trained epoch, for ``train_supernet``'s ``on_epoch``: ``done`` of ``total`` epochs over all phases
    (a resumed training starts past 0)."""

    phase: str
    epoch: int
    epochs: int
    done: int
    total: int
    loss: float


@dataclass
class ShrinkingReport:
    """What a training did: seconds per phase, where it resumed, and any checkpoint it could not use."""

    directory: str
    reused: bool = False
    resumed_from: str | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # reused: what the session that finished the cached supernet recorded (its seconds per phase, and where
    # it resumed), so a report can say what the reuse saved; empty for caches written before it was recorded
    cached_training: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return float(sum(self.phase_seconds.values()))


def _sample(space: SearchSpace, rng: np.random.Generator, phase: str, *, max_width: float, resolution: int,
            only_new: bool = False) -> Arch:
    """A random subnet with the dimensions not yet elastic in ``phase`` at their largest; with
    ``only_new`` also those of the earlier phases (only ``phase``'s own dimension varies)."""
    level = PHASES.index(phase)
    low = level if only_new else 1  # the lowest phase whose dimension is sampled

    def elastic(dimension_level: int) -> bool:
        return low <= dimension_level <= level

    widths = [w for w in space.decisions()[0].options if w <= max_width]
    values = space.sample(rng).as_dict()
    values["resolution"] = resolution
    values["width"] = widths[int(rng.integers(len(widths)))] if elastic(4) else max_width
    if not elastic(2):
        values["head"] = True
    for s in range(1, len(STAGES) + 1):
        if not elastic(2):
            values[f"s{s}_depth"] = max(DEPTHS)
        for b in range(1, max(DEPTHS) + 1):
            if not elastic(1):
                values[f"s{s}_b{b}_kernel"] = max(KERNELS)
            if not elastic(3):
                values[f"s{s}_b{b}_expand"] = max(EXPANDS)
    return space.canonical(Arch.from_dict(space.name, values))


def _with_gap(space: SearchSpace, arch: Arch, rng: np.random.Generator, reader: int, predecessor: int) -> Arch:
    """``arch`` with stages ``predecessor+1 .. reader-1`` left out and the two around the gap present
    (a left-out one revived with a random depth, kernels and expansions)."""
    values = arch.as_dict()
    for s in range(predecessor + 1, reader):
        values[f"s{s}_depth"] = 0
    for s in (predecessor, reader):
        if 1 <= s <= len(STAGES) and not values[f"s{s}_depth"]:
            depths = [d for d in DEPTHS if d]
            values[f"s{s}_depth"] = depths[int(rng.integers(len(depths)))]
            for b in range(1, max(DEPTHS) + 1):
                values[f"s{s}_b{b}_kernel"] = KERNELS[int(rng.integers(len(KERNELS)))]
                values[f"s{s}_b{b}_expand"] = EXPANDS[int(rng.integers(len(EXPANDS)))]
    return space.canonical(Arch.from_dict(space.name, values))


def _sample_step(net: ElasticMCUNet, rng: np.random.Generator, phase: str, *, schedule: ShrinkingSchedule,
                 resolution: int, keep: tuple[str, ...] | None, reader: bool = False,
                 gap_turns: dict[Any, int] | None = None) -> list[Arch]:
    """``subnets_per_step`` subnets of ``phase``; with ``keep``, only subnets whose stride pattern it is,
    with ``reader`` only subnets that use a predecessor input slot (rejection sampling, at most 50 draws
    each, then the last draw). With ``schedule.isolate_new`` and two or more subnets per step (not with
    ``reader``), the first varies only the phase's own dimension.

    ``gap_turns`` (with ``reader``; ``reader_sampling="round_robin"``) holds, per ``keep``, the index of
    the next (reader, predecessor) pair: each subnet is drawn with that gap, and a pair that cannot keep
    the stride pattern (stage 1 left out at the native resolution) is passed over."""
    archs = []
    gaps = reader_gaps()
    for i in range(schedule.subnets_per_step):
        only_new = schedule.isolate_new and i == 0 and schedule.subnets_per_step > 1 and not reader
        if reader and gap_turns is not None:
            turn = gap_turns.get(keep, 0)
            arch = None
            for offset in range(len(gaps)):
                gap = gaps[(turn + offset) % len(gaps)]
                for _ in range(5):
                    candidate = _with_gap(net.space, _sample(net.space, rng, phase, max_width=schedule.max_width,
                                                             resolution=resolution), rng, *gap)
                    plan = net.plan(candidate)
                    if (keep is None or stride_pattern(plan) == keep) and uses_gap(plan, *gap):
                        arch = candidate
                        break
                if arch is not None:
                    gap_turns[keep] = turn + offset + 1
                    break
            archs.append(arch if arch is not None else candidate)
            continue
        for _ in range(50):
            arch = _sample(net.space, rng, phase, max_width=schedule.max_width, resolution=resolution,
                           only_new=only_new)
            plan = net.plan(arch)
            if (keep is None or stride_pattern(plan) == keep) and \
                    (not reader or any(shared_slot(step.slot) != step.slot for step in plan.steps)):
                break
        archs.append(arch)
    return archs


class _Adam:
    """Adam over the supernet's variables (fresh moments per phase; the expand phase permutes channels)."""

    def __init__(self, tf: Any, variables: list[Any], *, lr_scales: list[float] | None = None) -> None:
        self.tf = tf
        self.variables = variables
        self.lr_scales = lr_scales if lr_scales is not None else [1.0] * len(variables)
        self.m = [tf.Variable(tf.zeros(v.shape)) for v in variables]
        self.v = [tf.Variable(tf.zeros(v.shape)) for v in variables]
        self.step = 0

    def apply(self, grads: list[Any], lr: float) -> None:
        tf = self.tf
        self.step += 1
        b1p, b2p = tf.constant(BETA_1 ** self.step), tf.constant(BETA_2 ** self.step)
        for var, grad, m, v, scale in zip(self.variables, grads, self.m, self.v, self.lr_scales):
            if grad is None:
                continue
            if isinstance(grad, tf.IndexedSlices):
                grad = tf.convert_to_tensor(grad)
            tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                                         lr=tf.constant(lr * scale), beta1=BETA_1, beta2=BETA_2, epsilon=EPSILON,
                                         grad=grad)


def _write_state(directory: Path, state: dict[str, Any]) -> None:
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(directory / STATE_FILE)


def _read_state(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / STATE_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"corrupt": True}


def _restore(net: ElasticMCUNet, directory: Path, state: dict[str, Any], report: ShrinkingReport
             ) -> tuple[int, int]:
    """Load the newest usable checkpoint; returns (phase index, epochs done in it) to continue from."""
    if state.get("corrupt"):
        report.notes.append(f"{directory / STATE_FILE} is corrupt; retraining from the last intact phase")
        log.warning(report.notes[-1])
        state = {}
    phases_done: dict[str, str] = dict(state.get("phases", {}))
    epoch = state.get("epoch")
    if epoch:
        phase = PHASES.index(epoch["phase"])
        try:
            net.load_state(load_weights(directory / epoch["file"], sha256=epoch["sha256"]), source=epoch["file"])
            report.resumed_from = f"phase {epoch['phase']}, epoch {epoch['done']}"
            return phase, int(epoch["done"])
        except SupernetError as exc:
            report.notes.append(f"checkpoint of phase {epoch['phase']} epoch {epoch['done']} is corrupt ({exc}); "
                                f"retraining phase {epoch['phase']} from its start")
            log.warning(report.notes[-1])
    for index in range(len(PHASES) - 1, -1, -1):
        name = PHASES[index]
        if name not in phases_done:
            continue
        try:
            net.load_state(load_weights(directory / f"phase_{name}.npz", sha256=phases_done[name]),
                           source=f"phase_{name}.npz")
            report.resumed_from = report.resumed_from or f"end of phase {name}"
            return index + 1, 0
        except SupernetError as exc:
            report.notes.append(f"checkpoint after phase {name} is corrupt ({exc}); retraining phase {name}")
            log.warning(report.notes[-1])
    return 0, 0


def train_supernet(*, dataset: Any, space: SearchSpace, schedule: ShrinkingSchedule, cache_dir: str | Path,
                   directory: str | Path | None = None,
                   on_epoch: Callable[[EpochDone], None] | None = None) -> tuple[ElasticMCUNet, ShrinkingReport]:
    """The trained supernet for (dataset, space, schedule), trained now, resumed, or reused from the cache.

    ``directory`` overrides the cache folder (``cache_dir/ofa/<key>``). ``on_epoch``
    hears of every epoch trained (a progress bar: training takes minutes). Raises
    SupernetError when that folder was trained for another dataset, space or
    schedule, or when the space or input is not covered.
    """
    meta = supernet_meta(dataset_fingerprint=dataset.fingerprint, space=space.name,
                         input_shape=tuple(space.input_shape), num_classes=space.num_classes,
                         schedule=schedule.to_json())
    folder = Path(directory) if directory is not None else supernet_dir(cache_dir, meta)
    net = ElasticMCUNet(space=space, max_width=schedule.max_width, seed=schedule.seed,
                        predecessor_inputs=schedule.predecessor_inputs)
    claim_dir(folder, meta)
    report = ShrinkingReport(directory=str(folder))
    state = _read_state(folder)
    final = state.get("final")
    if final:
        try:
            net.load_state(load_weights(folder / FINAL_FILE, sha256=final), source=str(folder / FINAL_FILE))
            report.reused = True
            if "phase_seconds" in state:
                report.cached_training = {"phase_seconds": state["phase_seconds"],
                                          "resumed_from": state.get("resumed_from")}
            return net, report
        except SupernetError as exc:
            report.notes.append(f"{exc}; resuming from the phase checkpoints")
            log.warning(report.notes[-1])
    start_phase, start_epoch = _restore(net, folder, state, report)
    if report.resumed_from:
        log.info("supernet %s: resuming from %s", folder.name, report.resumed_from)
    phases = dict(state.get("phases", {})) if not state.get("corrupt") else {}
    x, y = dataset.x_train, dataset.y_train
    if schedule.max_train_samples is not None and schedule.max_train_samples < len(y):
        idx = np.random.default_rng(schedule.seed).permutation(len(y))[: schedule.max_train_samples]
        x, y = x[idx], y[idx]
    teacher = None
    if start_phase > 0:
        try:
            teacher_state = load_weights(folder / "phase_full.npz", sha256=phases.get("full"))
            teacher = {k: net.tf.constant(v) for k, v in teacher_state.items()}
        except SupernetError as exc:
            report.notes.append(f"{exc}; distilling from the current weights instead")
            log.warning(report.notes[-1])
            teacher = copy_variables(net.variables)
    forward = CompiledForward(net)  # one set of traces for all phases
    for index in range(start_phase, len(PHASES)):
        phase = PHASES[index]
        began = time.perf_counter()
        first_epoch = start_epoch if index == start_phase else 0
        if phase == "depth" and first_epoch == 0:
            net.init_input_slots()
        if phase == "expand" and first_epoch == 0:
            net.sort_expansions()
        _train_phase(net, x, y, phase=phase, schedule=schedule, teacher=teacher, first_epoch=first_epoch,
                     folder=folder, phases=phases, num_classes=space.num_classes, forward=forward, on_epoch=on_epoch)
        phases[phase] = save_weights(folder / f"phase_{phase}.npz", net.state())
        _write_state(folder, {"phases": phases, "epoch": None})
        if phase == "full":
            teacher = copy_variables(net.variables)
        report.phase_seconds[phase] = time.perf_counter() - began
        log.info("supernet %s: phase %s done in %.1f s", folder.name, phase, report.phase_seconds[phase])
    if schedule.predecessor_inputs and schedule.reader_epochs:
        # killed here, a rerun finds every phase done but no final weights and repeats this one
        began = time.perf_counter()
        _train_phase(net, x, y, phase=READERS, schedule=schedule, teacher=teacher, first_epoch=0, folder=folder,
                     phases=phases, num_classes=space.num_classes, forward=forward, on_epoch=on_epoch)
        report.phase_seconds[READERS] = time.perf_counter() - began
    digest = save_weights(folder / FINAL_FILE, net.state())
    _write_state(folder, {"phases": phases, "epoch": None, "final": digest,
                          "seconds": report.seconds, "phase_seconds": report.phase_seconds,
                          "resumed_from": report.resumed_from, "notes": report.notes})
    return net, report


def _train_phase(net: ElasticMCUNet, x: np.ndarray, y: np.ndarray, *, phase: str, schedule: ShrinkingSchedule,
                 teacher: dict[str, Any] | None, first_epoch: int, folder: Path, phases: dict[str, str],
                 num_classes: int, forward: CompiledForward,
                 on_epoch: Callable[[EpochDone], None] | None = None) -> None:
    """One phase of progressive shrinking. ``READERS`` trains only the predecessor input slots, on
    width-phase subnets that use one, so no other subnet changes."""
    tf = net.tf
    space = net.space
    only_readers = phase == READERS
    level = len(PHASES) if only_readers else PHASES.index(phase)
    epochs = int(schedule.reader_epochs if only_readers else schedule.epochs[level])
    if epochs == 0:
        return
    readers = {f"{slot}/" for slot in net.input_slots()}
    body = float(schedule.reader_body_lr_scale) if only_readers else 0.0  # readers phase: the other weights too
    names = [n for n in net.variables if not only_readers or body or n[:n.index("/") + 1] in readers]
    variables = [net.variables[n] for n in names]
    is_reader = [n[:n.index("/") + 1] in readers for n in names]
    if only_readers:
        rate = float(schedule.reader_phase_lr_scale)
        scales = [rate if r else body * rate for r in is_reader]
    else:
        scales = [schedule.reader_lr_scale if r else 1.0 for r in is_reader]
    adam = _Adam(tf, variables, lr_scales=scales)
    gap_turns: dict[Any, int] | None = {} if only_readers and schedule.reader_sampling == "round_robin" else None
    if only_readers:
        phase = PHASES[-1]  # its sampler, resolutions and shifts
    resolutions = [int(r) for r in space.decisions()[1].options]
    native = int(space.input_shape[0])
    full = largest_archs(space, max_width=schedule.max_width)[0].replace(resolution=native)
    full_strides = stride_pattern(net.plan(full))
    steps_per_epoch = max(1, math.ceil(len(y) / schedule.batch_size))
    total = epochs * steps_per_epoch
    ls = schedule.label_smoothing
    for epoch in range(first_epoch, epochs):
        rng = np.random.default_rng([schedule.seed, level, epoch])
        order = rng.permutation(len(y))
        for i in range(steps_per_epoch):
            idx = order[i * schedule.batch_size:(i + 1) * schedule.batch_size]
            if not len(idx):
                continue
            xb, yb = x[idx], y[idx]
            # a share shift_prob of the steps may move the stride-2 positions (module docstring)
            shift = phase != "full" and float(rng.random()) < schedule.shift_prob
            res = resolutions[int(rng.integers(len(resolutions)))]
            if phase != PHASES[-1] or not shift:  # resolution is elastic last
                res = native
            xr = net.prepare_inputs(xb, res)
            target = tf.one_hot(yb, num_classes) * (1.0 - ls) + ls / num_classes
            if phase == "full":
                archs = [full]
            else:
                archs = _sample_step(net, rng, phase, schedule=schedule, resolution=res,
                                     keep=None if shift else full_strides, reader=only_readers, gap_turns=gap_turns)
            if body:  # the shared weights move for the skip subnets: the full network learns along
                archs = archs + [full]
            xn = net.prepare_inputs(xb, native)
            soft = None
            if teacher is not None and schedule.kd_weight > 0:
                # the teacher sees the same images at the resolution it was trained at
                soft = tf.nn.softmax(forward.logits(full, xn, variables=teacher))
            with tf.GradientTape() as tape:
                loss = 0.0
                for arch in archs:
                    logits = forward.logits(arch, xn if int(arch["resolution"]) == native else xr)
                    loss += tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits))
                    if soft is not None:
                        loss += schedule.kd_weight * tf.reduce_mean(
                            tf.nn.softmax_cross_entropy_with_logits(soft, logits))
            grads = tape.gradient(loss, variables)
            step = epoch * steps_per_epoch + i
            lr = 0.5 * schedule.learning_rate * (1 + math.cos(math.pi * step / total))
            adam.apply(grads, lr)
        if not only_readers:
            digest = save_weights(folder / "epoch.npz", net.state())
            _write_state(folder, {"phases": phases, "epoch": {"phase": phase, "done": epoch + 1,
                                                             "file": "epoch.npz", "sha256": digest}})
        log.info("supernet %s: phase %s epoch %d/%d (last loss %.3f, %d traces so far)", folder.name,
                 READERS if only_readers else phase, epoch + 1, epochs, float(loss), forward.traces)
        if on_epoch is not None:
            before = sum(int(e) for e in schedule.epochs[:level])
            on_epoch(EpochDone(phase=READERS if only_readers else phase, epoch=epoch + 1, epochs=epochs,
                               done=before + epoch + 1, total=schedule.total_epochs, loss=float(loss)))
