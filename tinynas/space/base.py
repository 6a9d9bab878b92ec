"""``SearchSpace``: the base every space subclasses, and the registry of spaces.

A space is built for one input shape and class count. It lists its decisions
(name + options); the base class derives sampling, mutation, membership and the
index encoding that strategies use from that list, so a space only has to say
what its decisions are and how an ``Arch`` becomes a ``Graph``.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from tinynas.errors import SpaceError, TinyNASError
from tinynas.registry import Registry
from tinynas.space.arch import Arch, Scalar
from tinynas.space.graph import Graph


@dataclass(frozen=True)
class Decision:
    """One choice of a space: its name and the values it may take."""

    name: str
    options: tuple[Scalar, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "options": list(self.options)}


class SearchSpace(ABC):
    """A space of architectures for one input shape and class count.

    Subclasses set ``name`` and ``description``, implement ``decisions()`` and
    ``_build(arch)``, and may override ``validate`` (for constraints between
    decisions) or ``sample``/``mutate``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: how to read ``summary``'s notation, for a reader of the report ("" when it reads as words)
    summary_legend: ClassVar[str] = ""
    default_input_shape: ClassVar[tuple[int, ...]] = (32, 32, 3)
    #: builtin ops that every arch of the space has: a firmware template whose TFLite Micro library lacks
    #: one cannot build any winner, so ``run`` refuses the pair before it searches
    ops_in_every_arch: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, input_shape: Sequence[int], num_classes: int) -> None:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) not in (2, 3) or any(d < 1 for d in shape):
            raise SpaceError(
                f"input shape must be H,W,C or L,C with positive sizes, got {tuple(input_shape)}"
            )
        if int(num_classes) < 2:
            raise SpaceError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.input_shape = shape
        self.num_classes = int(num_classes)
        self._decisions: list[Decision] | None = None

    # -- what a subclass provides --------------------------------------------
    @abstractmethod
    def _decisions_for_input(self) -> list[Decision]:
        """The decisions of this space for ``self.input_shape``."""

    @abstractmethod
    def _build(self, arch: Arch) -> Graph:
        """The Graph of a valid arch."""

    # -- derived --------------------------------------------------------------
    def decisions(self) -> list[Decision]:
        if self._decisions is None:
            self._decisions = self._decisions_for_input()
        return self._decisions

    def size(self) -> int:
        """How many decision vectors the space has (before any constraint between them)."""
        n = 1
        for d in self.decisions():
            n *= len(d.options)
        return n

    def resizes_input(self) -> bool:
        """Whether some archs take the input at another size than the dataset's (mcunet's resolution).

        Training then resizes the pictures to the arch's size, and so must the firmware's image front
        end: its buffers grow, and a run sets them aside before the search sees the arena budget."""
        return False

    def validate(self, arch: Arch) -> None:
        """Raise SpaceError saying why ``arch`` is not in this space."""
        if arch.space != self.name:
            raise SpaceError(f"arch belongs to space {arch.space!r}, not {self.name!r}")
        names = [d.name for d in self.decisions()]
        given = [k for k, _ in arch.decisions]
        missing = [n for n in names if n not in given]
        extra = [n for n in given if n not in names]
        if missing or extra or len(given) != len(set(given)):
            wrong = [f"{what} {_some(found)}" for what, found in (("missing", missing), ("unexpected", extra)) if found]
            raise SpaceError(f"arch decisions do not match space {self.name!r} ({len(names)} decisions): "
                             + ("; ".join(wrong) if wrong else "a decision is given twice"))
        for d in self.decisions():
            value = arch[d.name]
            if value not in d.options or type(value) is not type(d.options[d.options.index(value)]):
                raise SpaceError(
                    f"decision {d.name!r} of space {self.name!r} must be one of {list(d.options)}, got {value!r}"
                )

    def canonical(self, arch: Arch) -> Arch:
        """The one spelling of ``arch``'s network (spaces with decisions that can go unused override this)."""
        return arch

    def summary(self, arch: Arch) -> str:
        """A one-line description of ``arch`` for tables."""
        return str(arch)

    def contains(self, arch: Arch) -> bool:
        try:
            self.validate(arch)
        except SpaceError:
            return False
        return True

    def graph(self, arch: Arch) -> Graph:
        """The framework-free Graph of ``arch`` for this input shape and class count."""
        self.validate(arch)
        return self._build(arch)

    def graph_from_file(self, arch: Arch, *, path: Any, resample: Sequence[str],
                        error: type[TinyNASError] = SpaceError) -> Graph:
        """``graph(arch)`` for an arch read from the file ``path``. One sampled for another input shape or
        class count (or a partial file) raises ``error`` naming the file, this space's input and classes, and
        ``resample``: the command that samples an arch for them."""
        try:
            return self.graph(arch)
        except SpaceError as exc:
            raise error(f"{path}: arch {arch.id} is not an arch of space {self.name!r} for input "
                        f"{self.input_shape} and {self.num_classes} classes: {exc}. One that is: "
                        f"{shlex.join(resample)} > arch.json") from exc

    def encode(self, arch: Arch) -> list[int]:
        """The arch as one option index per decision (what strategies work on)."""
        self.validate(arch)
        return [d.options.index(arch[d.name]) for d in self.decisions()]

    def decode(self, indices: Sequence[int]) -> Arch:
        decisions = self.decisions()
        if len(indices) != len(decisions):
            raise SpaceError(f"space {self.name!r} has {len(decisions)} decisions, got {len(indices)} indices")
        return Arch.from_dict(self.name, {d.name: d.options[int(i)] for d, i in zip(decisions, indices)})

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random valid arch (rejection sampling over ``validate``)."""
        for _ in range(1000):
            arch = self.decode([int(rng.integers(len(d.options))) for d in self.decisions()])
            if self.contains(arch):
                return arch
        raise SpaceError(f"space {self.name!r} could not sample a valid arch in 1000 tries")

    def mutate(self, arch: Arch, rng: np.random.Generator, *, n_changes: int = 1) -> Arch:
        """``arch`` with ``n_changes`` decisions set to another of their options."""
        decisions = [d for d in self.decisions() if len(d.options) > 1]
        if not decisions:
            return arch
        for _ in range(1000):
            values = arch.as_dict()
            for idx in rng.choice(len(decisions), size=min(n_changes, len(decisions)), replace=False):
                d = decisions[int(idx)]
                others = [o for o in d.options if o != values[d.name]]
                values[d.name] = others[int(rng.integers(len(others)))]
            child = Arch.from_dict(self.name, values)
            if self.contains(child):
                return child
        raise SpaceError(f"space {self.name!r} could not mutate {arch} into a valid arch")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "size": self.size(),
            "decisions": [d.to_json() for d in self.decisions()],
        }


SPACES: Registry[type[SearchSpace]] = Registry("search space", error=SpaceError)


def _some(names: list[str], shown: int = 8) -> str:
    """The first ``shown`` of ``names`` and how many more: a partial arch file misses dozens of decisions."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{names[:shown]}{more}"


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: registers a SearchSpace subclass under its ``name``."""
    return SPACES.add(cls.name, cls)


def get_space(name: str, *, input_shape: Sequence[int], num_classes: int, adjacency: Any = None,
              node_task: bool | None = None) -> SearchSpace:
    """The space ``name`` built for an input shape and class count (raises SpaceError if unknown).

    ``adjacency`` is a graph dataset's fixed (nodes, nodes) graph and ``node_task`` whether its
    samples ask about one node (None: not known, e.g. costing without data); spaces that set
    ``takes_adjacency`` (gcn) bake the graph into their models, the others ignore both.
    """
    cls = space_class(name)
    if getattr(cls, "takes_adjacency", False):
        return cls(input_shape=input_shape, num_classes=num_classes, adjacency=adjacency,  # type: ignore[call-arg]
                   node_task=node_task)
    return cls(input_shape=input_shape, num_classes=num_classes)


def space_names() -> list[str]:
    _load_builtin_spaces()
    return SPACES.names()


def space_class(name: str) -> type[SearchSpace]:
    """The registered class of space ``name``, built-ins loaded (raises SpaceError if unknown)."""
    _load_builtin_spaces()
    return SPACES.get(name)


def _load_builtin_spaces() -> None:
    # Importing the modules registers them; kept lazy so `import tinynas.space` stays cheap.
    import importlib

    for module in ("mcunet", "nanonas", "dscnn", "nasbench201", "tinyformer", "gcn"):
        try:
            importlib.import_module(f"tinynas.space.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tinynas.space.{module}":
                raise
