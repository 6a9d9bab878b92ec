"""``TrainBudget`` (how much training a candidate gets) and ``TrainResult`` (what came out).

Both cross module borders (search strategies, the pipeline journal, the result
cache), so both are frozen and round-trip through JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from tinynas.errors import TrainError

#: The fewest samples one epoch of a search or final training draws (the search's default subset,
#: ``--search-samples``). A smaller training set is passed over several times per epoch, reshuffled each
#: time: at 64 per batch, 20 epochs of UCR ArrowHead's 30 training series were 20 optimizer steps, and the
#: trained nets scored 52 % on its test split against 64 % after 320 steps (scripts/bench_small_data.py).
MIN_EPOCH_SAMPLES = 1000


def passes_to_draw(samples: int, *, pass_samples: int) -> int:
    """How many passes over ``pass_samples`` one epoch makes to draw at least ``samples`` (1 at least): the rule
    of a small set's training epochs (``TrainBudget.on_train_set``) and of its QAT epochs."""
    return max(1, math.ceil(int(samples) / max(1, int(pass_samples))))


@dataclass(frozen=True)
class TrainBudget:
    """Epochs, a stratified sample cap, early stopping and the optimizer's settings.

    The default schedule is Adam with cosine decay to zero over all steps
    (Loshchilov & Hutter 2017, SGDR without restarts). ``max_train_samples``
    takes a class-balanced subset that depends only on the seed. ``epoch_passes``
    is how many times one epoch goes over that set (``on_train_set`` sets it).
    """

    epochs: int = 10
    max_train_samples: int | None = None
    batch_size: int = 64
    early_stopping_patience: int | None = None
    learning_rate: float = 3e-3
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    evaluate_test: bool = True
    epoch_passes: int = 1

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.epochs, int) or self.epochs < 1:
            problems.append(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.max_train_samples is not None and (not isinstance(self.max_train_samples, int) or self.max_train_samples < 1):
            problems.append(f"max_train_samples must be a positive integer or None, got {self.max_train_samples!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            problems.append(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            problems.append(f"early_stopping_patience must be a positive integer or None, got {self.early_stopping_patience!r}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.epoch_passes, int) or self.epoch_passes < 1:
            problems.append(f"epoch_passes must be a positive integer, got {self.epoch_passes!r}")
        if problems:
            raise TrainError("bad training budget: " + "; ".join(problems))

    @classmethod
    def low_fidelity(cls, *, epochs: int = 2, max_train_samples: int = 2000, batch_size: int = 64) -> "TrainBudget":
        """A few epochs on a subset, no test evaluation: what a search spends per candidate."""
        return cls(epochs=epochs, max_train_samples=max_train_samples, batch_size=batch_size, evaluate_test=False)

    def on_train_set(self, train_samples: int) -> "TrainBudget":
        """This budget on a training set of ``train_samples``, with as many ``epoch_passes`` as make one epoch
        draw the samples it would draw from a large set (``max_train_samples``), up to ``MIN_EPOCH_SAMPLES``;
        1 for a set that large."""
        wanted = min(MIN_EPOCH_SAMPLES, self.max_train_samples or MIN_EPOCH_SAMPLES)
        return replace(self, epoch_passes=passes_to_draw(wanted, pass_samples=self._pass_samples(train_samples)))

    def epoch_samples(self, train_samples: int) -> int:
        """How many samples one epoch draws from a training set of ``train_samples``."""
        return self._pass_samples(train_samples) * self.epoch_passes

    def _pass_samples(self, train_samples: int) -> int:
        """The samples one pass trains on: the set, or the ``max_train_samples`` subset of it."""
        return min(int(train_samples), self.max_train_samples or int(train_samples))

    def to_json(self) -> dict[str, Any]:
        """The fields; ``epoch_passes`` only when above 1, so a budget's cache key is what it was before the
        field existed wherever it changes nothing."""
        out = asdict(self)
        if self.epoch_passes == 1:
            del out["epoch_passes"]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrainBudget":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TrainError(f"unknown training budget field(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class TrainResult:
    """Metrics of one training run. ``model`` is only set when asked for and never cached.

    ``history`` maps Keras metric names (loss, accuracy, val_loss, val_accuracy)
    to one value per epoch run; ``cached`` says the result came from the cache
    and no training happened in this call.
    """

    val_accuracy: float
    val_loss: float
    train_accuracy: float
    test_accuracy: float | None
    test_loss: float | None
    train_seconds: float
    epochs_run: int
    train_samples: int
    params: int
    history: dict[str, list[float]]
    budget: TrainBudget
    seed: int
    arch_id: str | None
    dataset_fingerprint: str
    key: str
    cached: bool = False
    weights_path: str | None = None
    model: Any = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out["budget"] = self.budget.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrainResult":
        try:
            values = {f.name: data[f.name] for f in fields(cls) if f.name not in ("model", "cached", "weights_path")}
            values["budget"] = TrainBudget.from_json(data["budget"])
            values["history"] = {k: [float(v) for v in vs] for k, vs in dict(data["history"]).items()}
            return cls(**values, cached=bool(data.get("cached", False)), weights_path=data.get("weights_path"))
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainError(f"malformed training result ({type(exc).__name__}: {exc})") from None
