"""Check an int8 model the way the board will run it: accuracy in TFLite Micro, exact arena, budgets.

Sits between quantization and code generation in the deploy pipeline: the
``ValidationReport`` it returns is what ``metrics.json`` records and what decides
whether a model fits the board (``DoesNotFitError`` lists each budget and need).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from tinynas.cost.types import BudgetCheck
from tinynas.errors import DeployError, DoesNotFitError
from tinynas.hardware.profile import HardwareProfile

log = logging.getLogger(__name__)

#: An int8 model may lose at most this much top-1 accuracy (0..1, i.e. 1 point) before QAT is worth it.
MAX_INT8_DROP = 0.01


@dataclass(frozen=True)
class ValidationReport:
    """Accuracy (0..1) of the int8 model in TFLM next to the float one, its exact arena and flash, budgets."""

    int8_accuracy: float
    float_accuracy: float | None
    num_test_samples: int
    arena_bytes: int  # the interpreter's own figure: smallest arena that allocates and invokes
    flash_bytes: int  # size of the int8 .tflite flatbuffer
    profile_id: str
    checks: tuple[BudgetCheck, ...]

    @property
    def accuracy_drop(self) -> float | None:
        """float - int8 accuracy (0..1); None without a float accuracy."""
        return None if self.float_accuracy is None else self.float_accuracy - self.int8_accuracy

    @property
    def fits(self) -> bool:
        return all(c.fits for c in self.checks)

    def check(self, name: str) -> BudgetCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "int8_accuracy": self.int8_accuracy,
            "float_accuracy": self.float_accuracy,
            "accuracy_drop": self.accuracy_drop,
            "num_test_samples": self.num_test_samples,
            "arena_bytes": self.arena_bytes,
            "flash_bytes": self.flash_bytes,
            "profile_id": self.profile_id,
            "fits": self.fits,
            "checks": [c.to_json() for c in self.checks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ValidationReport":
        try:
            return cls(
                int8_accuracy=float(data["int8_accuracy"]),
                float_accuracy=None if data.get("float_accuracy") is None else float(data["float_accuracy"]),
                num_test_samples=int(data["num_test_samples"]),
                arena_bytes=int(data["arena_bytes"]),
                flash_bytes=int(data["flash_bytes"]),
                profile_id=str(data["profile_id"]),
                checks=tuple(
                    BudgetCheck(name=str(c["name"]), need=c["need"], budget=c["budget"]) for c in data["checks"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeployError(f"a validation report needs int8_accuracy, arena_bytes, flash_bytes, "
                              f"profile_id and checks; got {dict(data)!r} ({exc})") from None


def budget_checks(*, arena_bytes: int, flash_bytes: int, profile: HardwareProfile) -> tuple[BudgetCheck, ...]:
    """SRAM (arena vs ``sram_budget_bytes``) and flash (model vs ``flash_budget_bytes``) checks.

    The budgets already exclude what the firmware and the runtime take
    (``reserved_sram_bytes``, ``runtime_flash_bytes``), so needs are the model's own.
    """
    return (
        BudgetCheck(name="sram", need=int(arena_bytes), budget=int(profile.sram_budget_bytes)),
        BudgetCheck(name="flash", need=int(flash_bytes), budget=int(profile.flash_budget_bytes)),
    )


def validate_int8(
    model_bytes: bytes,
    *,
    dataset: Any,
    profile: HardwareProfile,
    float_accuracy: float | None,
    x_test: np.ndarray | None = None,
    max_samples: int | None = None,
    arena_bytes: int | None = None,
    source: str = "model_int8.tflite",
) -> ValidationReport:
    """Run ``model_bytes`` in TFLite Micro on the test split and check it against ``profile``.

    ``x_test`` replaces ``dataset.x_test`` when the model's input was resized
    (labels stay ``dataset.y_test``); ``max_samples`` caps the split (the first
    N samples). ``arena_bytes`` skips the measurement when the caller already
    has the exact figure. Raises ModelFileError for a corrupt or float model,
    DeployError when TFLM cannot run it; a model that does not fit is reported
    (``fits`` False), not raised: see ``raise_if_not_fits``.
    """
    from tinynas.deploy.arena import measure_arena_bytes
    from tinynas.deploy.interpreter import MicroInterpreter, require_int8

    require_int8(model_bytes, source=source)
    x = np.asarray(dataset.x_test if x_test is None else x_test)
    y = np.asarray(dataset.y_test)
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]
    if len(x) != len(y):
        raise DeployError(f"test split has {len(x)} inputs but {len(y)} labels")
    # The exact arena comes first: it probes in a child process, so a model that
    # crashes TFLM fails there with a message instead of taking this process down.
    if arena_bytes is None:
        arena_bytes = measure_arena_bytes(bytes(model_bytes), source=source)
    interp = MicroInterpreter(model_bytes, arena_bytes=arena_bytes, source=source)
    int8_acc = interp.accuracy(x, y)
    report = ValidationReport(
        int8_accuracy=int8_acc,
        float_accuracy=None if float_accuracy is None else float(float_accuracy),
        num_test_samples=int(len(y)),
        arena_bytes=int(arena_bytes),
        flash_bytes=len(model_bytes),
        profile_id=profile.id,
        checks=budget_checks(arena_bytes=arena_bytes, flash_bytes=len(model_bytes), profile=profile),
    )
    log.info("int8 accuracy %.4f (float %s) on %d samples, arena %d B, flash %d B, fits %s", int8_acc,
             "not given" if float_accuracy is None else f"{float_accuracy:.4f}", len(y), arena_bytes,
             len(model_bytes), report.fits)
    return report


def _bytes_kib(n: float) -> str:
    return f"{int(n):,} B ({n / 1024:.1f} KiB)"


def does_not_fit_message(report: ValidationReport, *, profile: HardwareProfile, where: str | None = None,
                         why: str = "") -> str:
    """Each budget, each need and the difference, in bytes and KiB; ``where`` names the written files, ``why``
    says what in the model makes it large, when something does."""
    lines = [f"the int8 model does not fit {profile.id} ({profile.name}):"]
    parts = {
        "sram": ("SRAM for the tensor arena",
                 f"{profile.sram_bytes:,} B SRAM - {profile.reserved_sram_bytes:,} B reserved for the firmware"),
        "flash": ("flash for the model",
                  f"{profile.flash_bytes:,} B flash - {profile.runtime_flash_bytes:,} B for the runtime code"),
    }
    for check in report.checks:
        label, derivation = parts.get(check.name, (check.name, ""))
        if check.budget is None:
            continue
        diff = check.budget - check.need
        verdict = f"over by {_bytes_kib(-diff)}" if diff < 0 else f"fits with {_bytes_kib(diff)} to spare"
        lines.append(
            f"  {label}: need {_bytes_kib(check.need)}, budget {_bytes_kib(check.budget)} "
            f"({derivation}); {verdict}"
        )
    if where:
        lines.append(f"The artifacts were written to {where} (metrics.json has \"fits\": false).")
    if why:
        lines.append(why)
    lines.append("Fix: pick a smaller model (e.g. `tinynas search --profile "
                 f"{profile.id}`) or a board with more memory.")
    return "\n".join(lines)


def raise_if_not_fits(report: ValidationReport, *, profile: HardwareProfile, where: str | None = None) -> None:
    """Raise DoesNotFitError (with ``does_not_fit_message``) when a budget is exceeded."""
    if not report.fits:
        raise DoesNotFitError(does_not_fit_message(report, profile=profile, where=where))
