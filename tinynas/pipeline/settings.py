"""``RunSettings``: what a search, run or sweep was asked to do, checked and resolved into ``config.toml``.

The CLI builds one from its flags; ``resolve`` loads the profile, dataset and
space once and turns bad input (zero budget, unknown names, a dataset the space
cannot take) into a SearchError before any work starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tinynas.errors import SearchError, SpaceError, TinyNASError
from tinynas.train.budget import TrainBudget

DEFAULT_BUDGET_CANDIDATES = 24


@dataclass(frozen=True)
class RunSettings:
    """The knobs of one run. Budgets: ``budget_candidates`` trained candidates and/or
    ``budget_minutes`` of search wall time (whichever ends first; neither: 24 candidates).

    The defaults keep a run on digits under 10 minutes on 2 cores: ``dscnn`` (Zhang
    et al. 2017) trains a candidate in seconds where ``mcunet`` takes a minute on such
    a machine; low fidelity is 3 epochs on 1000 samples; the top 3 get 20 epochs on all data.
    Less search fidelity is not cheaper (a dscnn candidate's time is mostly tracing) and it
    misleads: at 2 epochs on 500 samples, search accuracy ranked 162 mnist1d archs with
    Spearman 0.81 against final accuracy (0.91 at 3 x 1000), and at 8 candidates ``staged``
    was only 0.3 +- 0.3 points ahead of ``random`` on that tabulated space (2.1 at 3 x 1000).
    """

    profile: str
    dataset: str
    space: str = "dscnn"
    #: the dataset loader's own options, typed (``tinynas.data.coerce_options``), e.g. a CSV's label column
    dataset_options: dict[str, Any] = field(default_factory=dict)
    strategy: str = "staged"
    #: differentiable refinement between evolution and final training (staged only; tinynas.pipeline.refine)
    refine: str = "none"
    budget_candidates: int | None = None
    budget_minutes: float | None = None
    workers: int = 1
    #: where candidates train (tinynas.pipeline.evaluate.BACKENDS) and the Ray cluster's address
    backend: str = "local"
    ray_address: str | None = None
    seed: int = 0
    search_epochs: int = 3
    search_samples: int | None = 1000
    final_epochs: int = 20
    final_samples: int | None = None
    final_top_k: int = 3
    prefilter_candidates: int = 150
    prefilter_keep: int = 8
    template: str | None = None
    #: quantization-aware fine-tuning at deploy: None fine-tunes only when int8 loses accuracy (deploy's
    #: "auto"), True always, False never (the post-training int8 model is deployed as it is)
    qat: bool | None = None
    strategy_options: dict[str, Any] = field(default_factory=dict)
    #: hyperparameters of the refine stage's method (``--refine-option``; tinynas.pipeline.refine.REFINE_OPTIONS)
    refine_options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None  # default: <out>/cache (a sweep shares <sweep>/cache)
    progress: bool = False
    # Budgets stated on the command line, in place of the profile's (None: the profile's own).
    latency_ms: float | None = None
    arena_budget_bytes: int | None = None
    flash_budget_bytes: int | None = None
    max_macs: int | None = None

    def __post_init__(self) -> None:
        if self.budget_candidates is not None and int(self.budget_candidates) < 1:
            raise SearchError(
                f"the candidate budget must be at least 1, got {self.budget_candidates}; "
                "give --budget-candidates N with N >= 1 (or --budget-minutes M)"
            )
        if self.budget_minutes is not None and not float(self.budget_minutes) > 0:
            raise SearchError(
                f"the time budget must be more than 0 minutes, got {self.budget_minutes}; "
                "give --budget-minutes M with M > 0 (or --budget-candidates N)"
            )
        if int(self.workers) < 1:
            raise SearchError(f"--workers must be at least 1, got {self.workers}")
        from tinynas.pipeline.evaluate import BACKENDS

        BACKENDS.get(self.backend)  # an unknown name lists the known ones
        if self.ray_address is not None and self.backend != "ray":
            raise SearchError(f"--ray-address {self.ray_address} is for --backend ray; add --backend ray or leave it out")
        for name in ("search_epochs", "final_epochs", "final_top_k", "prefilter_candidates", "prefilter_keep"):
            if int(getattr(self, name)) < 1:
                raise SearchError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.search_samples is not None and int(self.search_samples) < 1:  # checked here, before the run starts
            raise SearchError(f"search_samples (--search-samples) must be at least 1, got {self.search_samples}")

    @property
    def candidates(self) -> int | None:
        """The candidate budget in force (the default when no budget was given at all)."""
        if self.budget_candidates is None and self.budget_minutes is None:
            return DEFAULT_BUDGET_CANDIDATES
        return None if self.budget_candidates is None else int(self.budget_candidates)

    def search_budget(self, *, train_samples: int) -> TrainBudget:
        """A search candidate's training on a dataset of ``train_samples`` (a small one is passed over
        several times per epoch: ``TrainBudget.on_train_set``)."""
        budget = TrainBudget.low_fidelity(epochs=int(self.search_epochs), max_train_samples=self.search_samples) \
            if self.search_samples is not None else TrainBudget(epochs=int(self.search_epochs), evaluate_test=False)
        return budget.on_train_set(train_samples)

    def final_budget(self, *, train_samples: int) -> TrainBudget:
        """The final training on a dataset of ``train_samples``, as ``search_budget``."""
        return TrainBudget(epochs=int(self.final_epochs), max_train_samples=self.final_samples,
                           evaluate_test=True).on_train_set(train_samples)

    def constraints(self) -> dict[str, Any]:
        """The budgets given on the command line, by name (only those given)."""
        given = {"latency_ms": self.latency_ms, "arena_budget_bytes": self.arena_budget_bytes,
                 "flash_budget_bytes": self.flash_budget_bytes, "max_macs": self.max_macs}
        return {k: v for k, v in given.items() if v is not None}

    def constrain(self, profile: Any) -> Any:
        """``profile`` with this run's command-line budgets in place of its own."""
        return profile.with_budgets(arena_budget_bytes=self.arena_budget_bytes,
                                    flash_budget_bytes=self.flash_budget_bytes,
                                    latency_target_ms=self.latency_ms, max_macs=self.max_macs)

    def load_dataset(self) -> Any:
        """The dataset with its loader options, split for this run's seed."""
        from tinynas.data import load_dataset

        return load_dataset(self.dataset, seed=int(self.seed), **self.dataset_options)

    def replace(self, **changes: Any) -> "RunSettings":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Resolved:
    """The loaded objects a run works with."""

    settings: RunSettings
    profile: Any  # HardwareProfile
    dataset: Any  # Dataset
    space: Any  # SearchSpace
    strategy_hyper: dict[str, Any]


def resolve(settings: RunSettings, *, dataset: Any = None) -> Resolved:
    """Load the profile, dataset and space and check that they go together.

    Raises ProfileError / DatasetError from their loaders, and SearchError for an
    unknown space or strategy (listing the known ones) or a dataset whose input
    shape the space cannot take.
    """
    from tinynas.hardware import load_profile
    from tinynas.space import get_space, space_names
    from tinynas.strategies import get_strategy, strategy_hyperparameters, strategy_names

    if settings.space not in space_names():
        raise SearchError(f"unknown search space {settings.space!r}; known: {', '.join(space_names())}")
    if settings.strategy not in strategy_names():
        raise SearchError(f"unknown search strategy {settings.strategy!r}; known: {', '.join(strategy_names())}")
    cls = get_strategy(settings.strategy)
    if cls.supported_spaces is not None and settings.space not in cls.supported_spaces:
        raise SearchError(f"strategy {settings.strategy!r} works only on space(s) {', '.join(cls.supported_spaces)}, "
                          f"not {settings.space!r}; pass --space {cls.supported_spaces[0]} or another --strategy")
    from tinynas.pipeline.refine import check_refine

    check_refine(refine=settings.refine, strategy=settings.strategy, space=settings.space)
    known = strategy_hyperparameters(settings.strategy)
    hyper = {k: v for k, v in known.items() if _plain(v)}
    for key, value in settings.strategy_options.items():
        if key not in known:
            raise SearchError(f"strategy {settings.strategy!r} has no hyperparameter {key!r}; "
                              f"known: {', '.join(known) or '(none)'}")
        hyper[key] = value
    profile = settings.constrain(load_profile(settings.profile))
    if dataset is None:
        dataset = settings.load_dataset()
    # candidates are ranked on validation accuracy and the winner's accuracy is measured on the test split
    dataset.require_splits("val", "test", needed_for="a search")
    try:
        space = get_space(settings.space, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                          adjacency=dataset.adjacency, node_task=dataset.node_task)
        if getattr(space, "takes_adjacency", False) and dataset.adjacency is None:
            raise SpaceError(f"{settings.space} needs a graph dataset (digits-grid, karate-club, or a .npz with an "
                             "adjacency array)")
        space.graph(space.sample(np.random.default_rng(0)))  # a space may only fail when building
    except (SpaceError, TinyNASError) as exc:
        fits = []
        for name in space_names():
            try:
                other = get_space(name, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
                if not (getattr(other, "takes_adjacency", False) and dataset.adjacency is None):
                    fits.append(name)
            except TinyNASError:
                pass
        raise SearchError(
            f"space {settings.space!r} cannot take dataset {settings.dataset!r} (input shape "
            f"{tuple(dataset.input_shape)}): {exc}; pick another --space"
            + (f" (these take it: {', '.join(fits)})" if fits else "")
        ) from None
    if settings.arena_budget_bytes is None:  # a budget the user gave is theirs to share out
        from tinynas.pipeline.front_end_budget import reserve_front_end

        profile = reserve_front_end(profile, dataset, resized=space.resizes_input())
    from tinynas.pipeline.refine import check_refine_options

    check_refine_options(refine=settings.refine, options=settings.refine_options, space=space, seed=int(settings.seed))
    if settings.strategy_options:  # the strategy checks its values before anything is written
        from tinynas.strategies import make_strategy

        try:
            make_strategy(settings.strategy, space=space, seed=int(settings.seed), **hyper)
        except (TypeError, ValueError) as exc:
            given = ", ".join(f"{k}={v!r}" for k, v in settings.strategy_options.items())
            raise SearchError(f"strategy {settings.strategy!r} cannot take {given}: {exc}") from None
    if hyper.get("score") == "predictor" and settings.budget_candidates is None and settings.budget_minutes is not None:
        raise SearchError("--strategy ofa with score=predictor scores a subnet in well under a millisecond: a budget "
                          "in minutes alone would journal hundreds of thousands of them; give --budget-candidates N "
                          "as well (2,000 took 5-14 s per board on glyphs)")
    return Resolved(settings=settings, profile=profile, dataset=dataset, space=space, strategy_hyper=hyper)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def config_for(resolved: Resolved) -> dict[str, dict[str, Any]]:
    """The ``config.toml`` content of a run: everything that determines its results, plus an
    ``execution`` section (workers, cache, template) that may change between resumes."""
    s, p, d = resolved.settings, resolved.profile, resolved.dataset
    hyper = {k: v for k, v in resolved.strategy_hyper.items() if v is not None and _plain(v)}
    return {
        "profile": {"id": p.id, "sram_budget_bytes": int(p.sram_budget_bytes),
                    "flash_budget_bytes": int(p.flash_budget_bytes),
                    "latency_target_ms": None if p.latency_target_ms is None else float(p.latency_target_ms),
                    "max_macs": p.max_macs,
                    # only when a front end was set aside, so the config.toml of other runs still resume
                    **({"front_end_reserve_bytes": int(p.front_end_reserve_bytes)} if p.front_end_reserve_bytes else {})},
        # options only when given, so the config.toml of runs from before --dataset-option still resume
        "dataset": {"name": s.dataset, **({"options": dict(s.dataset_options)} if s.dataset_options else {}),
                    "fingerprint": d.fingerprint, "input_shape": list(d.input_shape),
                    "num_classes": int(d.num_classes)},
        "space": {"name": s.space},
        "strategy": {"name": s.strategy, **hyper},
        "budget": {"candidates": s.candidates, "minutes": s.budget_minutes,
                   "search_epochs": s.search_epochs, "search_samples": s.search_samples,
                   "final_epochs": s.final_epochs, "final_samples": s.final_samples, "final_top_k": s.final_top_k,
                   "prefilter_candidates": s.prefilter_candidates, "prefilter_keep": s.prefilter_keep},
        "seeds": {"seed": int(s.seed)},
        # no section without refinement, so the config.toml of runs from before --refine still resume
        **({"refine": {"method": s.refine, **s.refine_options}} if s.refine != "none" else {}),
        # no section when deploy decides on QAT itself, so the config.toml of runs from before --qat still resume
        **({"deploy": {"qat": bool(s.qat)}} if s.qat is not None else {}),
        # what the command line changed of the profile's budgets (no section when nothing did)
        **({"constraints": s.constraints()} if s.constraints() else {}),
        "execution": {"workers": int(s.workers), "template": s.template, "cache_dir": s.cache_dir,
                      "backend": s.backend, "ray_address": s.ray_address},
    }


def cache_dir_for(settings: RunSettings, out: Path) -> Path:
    return Path(settings.cache_dir) if settings.cache_dir else Path(out) / "cache"


def settings_from_config(config: Mapping[str, Mapping[str, Any]], *, profile: str | None = None) -> RunSettings:
    """Rebuild the settings from a run's ``config.toml`` (used by ``tinynas report`` and sweeps)."""
    b, st, ex = config.get("budget", {}), dict(config.get("strategy", {})), config.get("execution", {})
    name = st.pop("name")
    refine = dict(config.get("refine", {}))
    return RunSettings(
        profile=profile or config["profile"]["id"], dataset=config["dataset"]["name"],
        dataset_options=dict(config["dataset"].get("options", {})), space=config["space"]["name"],
        strategy=name, refine=refine.pop("method", "none"), refine_options=refine,
        budget_candidates=b.get("candidates"), budget_minutes=b.get("minutes"),
        search_epochs=b.get("search_epochs", 3), search_samples=b.get("search_samples"),
        final_epochs=b.get("final_epochs", 20), final_samples=b.get("final_samples"),
        final_top_k=b.get("final_top_k", 3), prefilter_candidates=b.get("prefilter_candidates", 150),
        prefilter_keep=b.get("prefilter_keep", 8), seed=config.get("seeds", {}).get("seed", 0),
        qat=config.get("deploy", {}).get("qat"), workers=ex.get("workers", 1), template=ex.get("template"),
        cache_dir=ex.get("cache_dir"),
        backend=ex.get("backend", "local"), ray_address=ex.get("ray_address"),
        strategy_options=st, **dict(config.get("constraints", {})),
    )
