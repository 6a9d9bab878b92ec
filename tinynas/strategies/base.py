"""``Strategy``: the ask/tell base every search strategy subclasses, ``Observation``, and the registry.

The search stage asks a strategy for architectures, evaluates them (cost model,
training) outside it, and tells it each result. Strategies work on decision
vectors through the space's ``sample``/``mutate``/``encode``/``decode``, so each
one works on every space. The base class owns the lifecycle: history, pending
archs, the hard feasibility filter, the seeded generator and ``state_dict``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import itertools
import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from tinynas.errors import SearchError, SpaceError
from tinynas.registry import Registry
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.strategies.pareto import pareto_indices

log = logging.getLogger(__name__)

STATE_VERSION = 1
COSTS = ("latency_ms", "arena_bytes", "flash_bytes")
# Small spaces are enumerated once sampling stops finding new feasible archs, so
# "no repeats" strategies cover the whole space instead of giving up early.
ENUMERATE_LIMIT = 20_000


@dataclass(frozen=True)
class Observation:
    """What evaluating one arch gave: ``accuracy`` None means the evaluation failed or was skipped."""

    accuracy: float | None
    latency_ms: float | None = None
    arena_bytes: int | None = None
    flash_bytes: int | None = None
    feasible: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Feasible and with an accuracy: the only observations that rank."""
        return self.feasible and self.accuracy is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Observation":
        try:
            return cls(
                accuracy=None if data.get("accuracy") is None else float(data["accuracy"]),
                latency_ms=None if data.get("latency_ms") is None else float(data["latency_ms"]),
                arena_bytes=None if data.get("arena_bytes") is None else int(data["arena_bytes"]),
                flash_bytes=None if data.get("flash_bytes") is None else int(data["flash_bytes"]),
                feasible=bool(data.get("feasible", True)),
                extra=dict(data.get("extra") or {}),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise SearchError(f"not an observation as written by Observation.to_json(): {exc}; got {data!r}") from None


class Strategy(ABC):
    """Ask/tell search over one ``SearchSpace``.

    ``ask(n)`` proposes up to ``n`` archs (fewer, or none, once ``finished``);
    ``tell(arch, observation)`` reports one result, in any order. With
    ``feasible`` given, no arch it rejects is ever proposed (constraints are
    hard: an infeasible arch is never trained); ``max_tries`` bounds the
    sampling or mutation attempts before a SearchError says the constraints
    leave nothing to propose.

    Subclasses set ``name``, implement ``_propose(n)``, and may override
    ``_observe``, ``_state`` / ``_load_state`` (for their own JSON state) and
    ``finished``. ``supported_spaces`` (None: any) names the spaces they work on.

    Exhaustion is the base class's business, not each strategy's: whenever a
    subclass proposes fewer new archs than asked (it repeats itself or has nothing
    left), ``ask`` checks whether any untried feasible arch is left at all, so a
    search that has tried everything says so (``exhausted``) whatever the strategy.
    """

    name: ClassVar[str]
    supported_spaces: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        max_tries: int = 1000,
    ) -> None:
        if not isinstance(space, SearchSpace):
            raise SearchError(f"strategy {self.name!r} needs a SearchSpace, got {type(space).__name__}")
        if self.supported_spaces is not None and space.name not in self.supported_spaces:
            raise SearchError(
                f"strategy {self.name!r} works only on space(s) {', '.join(self.supported_spaces)}, "
                f"not {space.name!r}; pick another strategy (e.g. evolution) or space"
            )
        if int(max_tries) < 1:
            raise SearchError(f"max_tries must be at least 1, got {max_tries}")
        self.space = space
        self.seed = int(seed)
        self.max_tries = int(max_tries)
        self._feasible_fn = feasible
        self._feasible_cache: dict[str, bool] = {}
        self._rng = np.random.default_rng(self.seed)
        self.history: list[tuple[Arch, Observation]] = []
        self._pending: dict[str, Arch] = {}  # asked, not told yet (insertion-ordered)
        self._seen: set[str] = set()  # ids asked or told
        self._exhausted = False  # no untried feasible arch is left (saved: it only ever turns True)
        self._feasible_archs: list[Arch] | None = None  # every feasible arch of a small space, once scanned
        self._untried_hint: str | None = None  # an untried feasible arch the last exhaustion probe found

    # -- the hooks ------------------------------------------------------------------------
    @abstractmethod
    def _propose(self, n: int) -> list[Arch]:
        """Up to ``n`` new feasible archs of the space (the base records them as pending)."""

    def _observe(self, arch: Arch, result: Observation) -> None:
        """Learn from one result (history and pending are already updated)."""

    def _state(self) -> dict[str, Any]:
        """The subclass's own JSON-serializable state."""
        return {}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``_state`` returned."""

    @property
    def finished(self) -> bool:
        """True when the strategy has nothing more to propose (space exhausted, local optimum)."""
        return self._exhausted

    @property
    def finish_note(self) -> str:
        """Why the strategy finished, for reports (a subclass that stops on its own says why)."""
        return "it had nothing more to propose"

    @property
    def exhausted(self) -> bool:
        """True once no feasible arch is left that was not proposed yet.

        Exact for a space of up to ENUMERATE_LIMIT decision vectors (every feasible arch
        has been asked); in a bigger space it means ``max_tries`` random draws found no
        untried feasible arch, i.e. the strategy has tried all it could reach.
        """
        return self._exhausted

    def feasible_count(self) -> int | None:
        """How many feasible archs the space has, by a scan of a space of up to ENUMERATE_LIMIT
        decision vectors (done once, then cached); None for a bigger space, where nobody can know."""
        archs = self._all_feasible()
        return None if archs is None else len(archs)

    # -- ask / tell -----------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[Arch]:
        """Up to ``n`` archs to evaluate next: feasible, of this space; fewer once ``finished``.

        Once ``exhausted`` it returns only archs never proposed before (none, from then
        on): a repeat buys nothing when every feasible arch has been tried.
        """
        if int(n) < 1:
            raise SearchError(f"ask(n) needs n >= 1, got {n}")
        if self._exhausted:
            return []
        before = set(self._seen)
        archs = self._propose(int(n))
        fresh = list({a.id: a for a in archs if a.id not in before}.values())
        if len(fresh) < int(n):  # repeats or nothing: is anything untried left at all?
            idle = not archs and not self._pending
            self._exhausted = self._nothing_untried(before | {a.id for a in archs}, idle=idle,
                                                    repeated=len(fresh) < len(archs))
            if self._exhausted:
                archs = fresh
                log.info("strategy %s: no untried feasible arch of space %r is left after %d proposals",
                         self.name, self.space.name, len(before) + len(fresh))
        for arch in archs:
            self._pending[arch.id] = arch
            self._seen.add(arch.id)
        return archs

    def tell(self, arch: Arch, result: Observation) -> None:
        """Report the result of evaluating ``arch`` (asked before or not)."""
        if not isinstance(result, Observation):
            raise SearchError(f"tell() needs an Observation, got {type(result).__name__}")
        try:
            self.space.validate(arch)
        except SpaceError as exc:
            raise SearchError(f"tell() got an arch that is not in space {self.space.name!r}: {exc}") from None
        self._pending.pop(arch.id, None)
        self._seen.add(arch.id)
        self.history.append((arch, result))
        self._observe(arch, result)

    @property
    def pending(self) -> list[Arch]:
        """Archs asked and not told yet, oldest first."""
        return list(self._pending.values())

    # -- results --------------------------------------------------------------------------
    def best(self) -> tuple[Arch, Observation] | None:
        """The most accurate usable observation (ties: lower latency, then earliest), or None."""
        best = None
        for arch, obs in self.history:
            if not obs.usable:
                continue
            key = (obs.accuracy, -(obs.latency_ms if obs.latency_ms is not None else float("inf")))
            if best is None or key > best[0]:
                best = (key, arch, obs)
        return None if best is None else (best[1], best[2])

    def pareto_front(self, *, cost: str | Sequence[str] = "latency_ms") -> list[tuple[Arch, Observation]]:
        """Usable observations no other beats on accuracy and ``cost`` together, cheapest first.

        ``cost`` is ``latency_ms``, ``arena_bytes``, ``flash_bytes`` or a sequence
        of them (a front in more dimensions). Observations without that cost are left out.
        """
        costs = (cost,) if isinstance(cost, str) else tuple(cost)
        for c in costs:
            if c not in COSTS:
                raise SearchError(f"pareto_front cost must be one of {', '.join(COSTS)}, got {c!r}")
        rows = [(a, o) for a, o in self.history if o.usable and all(getattr(o, c) is not None for c in costs)]
        points = [(-o.accuracy, *(float(getattr(o, c)) for c in costs)) for _, o in rows]
        front = [rows[i] for i in pareto_indices(points)]
        return sorted(front, key=lambda r: (*(getattr(r[1], c) for c in costs), -r[1].accuracy))

    # -- checkpointing --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this strategy is, as plain JSON data."""
        return {
            "strategy": self.name,
            "version": STATE_VERSION,
            "space": self.space.name,
            "seed": self.seed,
            "rng": self._rng.bit_generator.state,
            "history": [{"arch": a.to_json(), "observation": o.to_json()} for a, o in self.history],
            "pending": [a.to_json() for a in self._pending.values()],
            "seen": sorted(self._seen),
            "exhausted": self._exhausted,
            "untried_hint": self._untried_hint,
            "state": self._state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()``; the strategy then asks exactly what the original would."""
        if not isinstance(state, Mapping) or state.get("strategy") != self.name:
            got = state.get("strategy") if isinstance(state, Mapping) else type(state).__name__
            raise SearchError(f"this state belongs to strategy {got!r}, not {self.name!r}")
        if state.get("version") != STATE_VERSION:
            raise SearchError(f"strategy state version {state.get('version')!r} is not supported "
                              f"(this tinynas writes {STATE_VERSION}); start the search again")
        if state.get("space") != self.space.name:
            raise SearchError(f"this state was saved for space {state.get('space')!r}, not {self.space.name!r}")
        try:
            self.seed = int(state["seed"])
            rng = np.random.default_rng()
            rng.bit_generator.state = state["rng"]
            history = [(Arch.from_json(h["arch"]), Observation.from_json(h["observation"])) for h in state["history"]]
            pending = [Arch.from_json(a) for a in state["pending"]]
            seen = set(state["seen"])
        except (KeyError, TypeError, ValueError, SpaceError) as exc:
            raise SearchError(f"strategy state is incomplete or damaged: {exc!r}") from None
        self._rng = rng
        self.history = history
        self._pending = {a.id: a for a in pending}
        self._seen = seen
        self._exhausted = bool(state.get("exhausted", False))  # states saved before it was kept: False
        self._untried_hint = state.get("untried_hint")
        self._load_state(state.get("state") or {})

    # -- helpers for subclasses -----------------------------------------------------------
    def is_feasible(self, arch: Arch) -> bool:
        """The feasibility filter's verdict (cached per arch; True without a filter)."""
        if self._feasible_fn is None:
            return True
        verdict = self._feasible_cache.get(arch.id)
        if verdict is None:
            verdict = self._feasible_cache[arch.id] = bool(self._feasible_fn(arch))
        return verdict

    def _no_feasible(self, how: str) -> SearchError:
        return SearchError(
            f"strategy {self.name!r} found no feasible arch of space {self.space.name!r} in {self.max_tries} "
            f"{how}: the constraints reject everything it tried; relax the SRAM/flash/latency budgets, "
            "pick a board with more room, or a space with smaller models"
        )

    def _sample_new(self, exclude: set[str] | None = None) -> Arch | None:
        """A uniformly random feasible arch not in ``exclude`` (default: seen); None if none is left.

        Raises SearchError when no feasible arch turns up at all.
        """
        exclude = self._seen if exclude is None else exclude
        any_feasible = False
        for _ in range(self.max_tries):
            arch = self._sample_any()
            if arch.id in exclude:
                any_feasible = any_feasible or self.is_feasible(arch)
                continue
            if self.is_feasible(arch):
                return arch
        remaining = self._enumerate_unseen(exclude)
        if remaining is not None:
            if remaining:
                return remaining[int(self._rng.integers(len(remaining)))]
            if any_feasible or exclude:
                return None  # every feasible arch has been proposed
            raise self._no_feasible("samples (and a scan of the whole space)")
        if any_feasible:
            # Draws found only archs proposed before. Not yet "exhausted": in a big space with few
            # feasible archs a mutation may still find new ones; ask() decides once nothing new comes.
            return None
        raise self._no_feasible("samples")

    def _sample_any(self, rng: np.random.Generator | None = None) -> Arch:
        try:
            return self.space.sample(self._rng if rng is None else rng)
        except SpaceError as exc:
            raise SearchError(f"strategy {self.name!r} cannot sample space {self.space.name!r}: {exc}") from None

    def _all_feasible(self) -> list[Arch] | None:
        """Every feasible arch of a space of up to ENUMERATE_LIMIT decision vectors, in decision
        order (scanned once); None for a bigger space."""
        if self.space.size() > ENUMERATE_LIMIT:
            return None
        if self._feasible_archs is None:
            out = []
            for indices in itertools.product(*(range(len(d.options)) for d in self.space.decisions())):
                arch = self.space.decode(indices)
                if self.space.contains(arch) and self.is_feasible(arch):
                    out.append(arch)
            self._feasible_archs = out
        return self._feasible_archs

    def _enumerate_unseen(self, exclude: set[str]) -> list[Arch] | None:
        """All feasible archs not in ``exclude`` for small spaces, in decision order; None if too big."""
        archs = self._all_feasible()
        return None if archs is None else [a for a in archs if a.id not in exclude]

    def _nothing_untried(self, proposed: set[str], *, idle: bool, repeated: bool) -> bool:
        """True when no feasible arch outside ``proposed`` is left.

        A small space is scanned: exact. In a bigger one the strategy's own verdict counts when it
        proposes nothing and waits for nothing (``idle``: all it can reach is tried); when it
        ``repeated`` an arch, ``max_tries`` draws from a generator of its own look for an untried
        one (its own generator, so the strategy's proposals are the same whether or not anyone
        asked). Otherwise (fewer archs while results are pending) nothing is concluded yet.
        """
        remaining = self._enumerate_unseen(proposed)
        if remaining is not None:
            return not remaining
        if idle:
            return True
        if not repeated:
            return False
        if self._untried_hint is not None and self._untried_hint not in proposed:
            return False  # the arch the last probe found is still untried: no new probe needed
        rng = np.random.default_rng([self.seed, len(proposed)])
        for _ in range(self.max_tries):
            arch = self._sample_any(rng)
            if arch.id not in proposed and self.is_feasible(arch):
                self._untried_hint = arch.id
                return False
        return True

    def _mutate_feasible(self, parent: Arch) -> Arch:
        """A feasible mutation of ``parent``, preferring one not seen yet (Real et al. allow repeats)."""
        fallback = None
        for _ in range(self.max_tries):
            try:
                child = self.space.mutate(parent, self._rng)
            except SpaceError as exc:
                raise SearchError(f"strategy {self.name!r} cannot mutate in space {self.space.name!r}: {exc}") from None
            if not self.is_feasible(child):
                continue
            if child.id not in self._seen:
                return child
            fallback = fallback or child
        if fallback is not None:
            return fallback
        sampled = self._sample_new()
        if sampled is None:
            raise self._no_feasible("mutations")
        return sampled


STRATEGIES: Registry[type[Strategy]] = Registry("search strategy", error=SearchError)
_BUILTIN_MODULES = (
    "tinynas.strategies.random_search",
    "tinynas.strategies.evolution",
    "tinynas.strategies.reinforce",
    "tinynas.strategies.nanonas",
    "tinynas.strategies.staged",
    "tinynas.strategies.ofa",
    "tinynas.strategies.differentiable",
    "tinynas.pipeline.staged",  # the staged strategy lives with the pipeline
)


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: registers a Strategy subclass under its ``name``."""
    return STRATEGIES.add(cls.name, cls)


_loaded = False


def _load_builtin_strategies() -> None:
    # Importing the modules registers them; done once, lazily, so `import tinynas.strategies` stays cheap.
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name`` (SearchError listing the known ones otherwise)."""
    _load_builtin_strategies()
    return STRATEGIES.get(name)


def strategy_names() -> list[str]:
    _load_builtin_strategies()
    return STRATEGIES.names()


def strategy_hyperparameters(name: str) -> dict[str, Any]:
    """The keyword hyperparameters of strategy ``name`` and their defaults (for help texts and configs)."""
    cls = get_strategy(name)
    params = inspect.signature(cls.__init__).parameters
    return {
        p.name: p.default for p in params.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("space", "seed", "feasible")
    }


def make_strategy(name: str, *, space: SearchSpace, seed: int = 0, **hyperparameters: Any) -> Strategy:
    """``get_strategy(name)(space=..., seed=..., **hyperparameters)``; an unknown keyword is a SearchError."""
    cls = get_strategy(name)
    known = strategy_hyperparameters(name)
    for key in hyperparameters:
        if key not in known and key != "feasible":
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SearchError(
                f"strategy {name!r} has no hyperparameter {key!r}; {hint}known: {', '.join(known) or '(none)'}"
            )
    return cls(space=space, seed=seed, **hyperparameters)
