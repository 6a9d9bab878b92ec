"""The supernet schedule a plain ``--strategy ofa`` trains: the benchmarked one (200 steps per phase on every
training sample, benchmarks/ofa/README.md (l)), not the per-candidate ``--search-epochs``/``--search-samples``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tinynas.errors import SearchError
from tinynas.ofa.pipeline import schedule_for
from tinynas.pipeline.settings import RunSettings, resolve


def _schedule(**options):
    settings = RunSettings(profile="nano33ble", dataset="digits", space="mcunet", strategy="ofa", search_epochs=1,
                           search_samples=64, strategy_options=options)
    resolved = resolve(settings)
    return schedule_for(SimpleNamespace(settings=settings, resolved=resolved)), len(resolved.dataset.y_train)


def test_by_default_the_supernet_trains_200_steps_per_phase_on_every_sample():
    schedule, n_train = _schedule()
    steps_per_epoch = -(-n_train // schedule.batch_size)
    assert schedule.max_train_samples is None  # --search-samples 64 does not cap it
    assert schedule.epochs == (2 * round(200 / steps_per_epoch),) + (round(200 / steps_per_epoch),) * 4


def test_supernet_samples_and_steps_per_phase_size_it():
    schedule, _ = _schedule(steps_per_phase=1, supernet_samples=64)
    assert schedule.max_train_samples == 64 and schedule.epochs == (2, 1, 1, 1, 1)


@pytest.mark.parametrize("options", [{"supernet_samples": 0}, {"steps_per_phase": 0}])
def test_a_schedule_of_nothing_is_refused(options):
    with pytest.raises(SearchError, match="at least 1"):
        _schedule(**options)


def test_readers_phase_adds_the_round_robin_phase_of_an_elastic_phases_length_and_its_own_cache_key():
    """``readers_phase``: one more phase as long as an elastic one, round-robin over the gaps, the body at a tenth
    of the readers' rate (benchmarks/ofa/README.md (t)); it is part of the cache key, so a supernet trained
    without it is never reused for it."""
    plain, _ = _schedule(steps_per_phase=1, supernet_samples=64)
    readers, _ = _schedule(steps_per_phase=1, supernet_samples=64, readers_phase=True)
    assert (readers.reader_epochs, readers.reader_sampling, readers.reader_body_lr_scale) == (1, "round_robin", 0.1)
    assert readers.epochs == plain.epochs and plain.reader_epochs == 0
    assert {k: v for k, v in readers.to_json().items() if k not in plain.to_json()} == {
        "reader_epochs": 1, "reader_sampling": "round_robin", "reader_body_lr_scale": 0.1}
    default, _ = _schedule()
    assert default.with_readers_phase().reader_epochs == default.epochs[1]  # 200 steps, like an elastic phase
