"""``nanonas``: NanoNAS's greedy hill climb over (k, c) on the ``nanonas`` space
(Garavagno et al. 2024; REFERENCE.md section 8).

Start from a small network, evaluate the feasible neighbours (k +- step, c +- 1),
move to the most accurate one if it beats the current network, and stop at a
local optimum. RAM and flash are checked per candidate through the feasibility
filter, so the climb never steps onto a network the board cannot hold.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from tinynas.errors import SearchError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.space.nanonas import cell_plan
from tinynas.strategies.base import Observation, Strategy, register_strategy


@register_strategy
class NanoNASHillClimb(Strategy):
    """Greedy hill climb on the nanonas space's (k, c) grid.

    ``start_k``/``start_c`` (None: the smallest k, and c = 1 when the input allows
    a cell) is where the climb starts; if the filter rejects it, the smallest
    feasible (k, c) is used. ``k_step`` is how many k options one move skips
    (accuracy differences between k and k+1 are within training noise with 3
    epochs). ``diagonal`` adds the four (k +- step, c +- 1) moves. A neighbour must
    beat the current accuracy by more than ``min_improvement`` to be taken.
    """

    name = "nanonas"
    supported_spaces = ("nanonas",)

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        max_tries: int = 1000,
        start_k: int | None = None,
        start_c: int | None = None,
        k_step: int = 2,
        diagonal: bool = False,
        min_improvement: float = 0.0,
    ) -> None:
        super().__init__(space=space, seed=seed, feasible=feasible, max_tries=max_tries)
        names = [d.name for d in space.decisions()]
        if names != ["k", "c"]:
            raise SearchError(f"nanonas strategy needs a space with decisions k and c, got {names}")
        self._k_options = list(space.decisions()[0].options)
        self._c_options = list(space.decisions()[1].options)
        if int(k_step) < 1:
            raise SearchError(f"nanonas k_step must be at least 1, got {k_step}")
        self.k_step = int(k_step)
        self.diagonal = bool(diagonal)
        self.min_improvement = float(min_improvement)
        k0 = self._k_options[0] if start_k is None else start_k
        c0 = (1 if 1 in self._c_options else self._c_options[0]) if start_c is None else start_c
        if k0 not in self._k_options or c0 not in self._c_options:
            raise SearchError(
                f"nanonas start (k={k0}, c={c0}) is not in the space: k in {self._k_options[0]}..{self._k_options[-1]}, "
                f"c in {self._c_options[0]}..{self._c_options[-1]}"
            )
        self._start = (self._k_options.index(k0), self._c_options.index(c0))
        self._current: tuple[int, int] | None = None  # (k index, c index) of the network we climb from
        self._current_accuracy: float | None = None
        self._results: dict[str, float | None] = {}  # arch id -> accuracy (None: failed/infeasible)
        self._latency: dict[str, float | None] = {}
        self._queue: list[tuple[int, int]] = []  # cells to evaluate in this round
        self._done = False

    # -- the grid -------------------------------------------------------------------------------
    def _arch(self, cell: tuple[int, int]) -> Arch:
        return self.space.decode(list(cell))

    def _ok(self, cell: tuple[int, int]) -> bool:
        ki, ci = cell
        if not (0 <= ki < len(self._k_options) and 0 <= ci < len(self._c_options)):
            return False
        arch = self._arch(cell)
        return self.space.contains(arch) and self.is_feasible(arch)

    def _c_index(self, ci: int, dc: int) -> int:
        """The index of c with ``dc`` more cells and the same variant (-1: no such option).

        Not ``ci + dc``: the space lists NanoNAS's own counts first and then each variant's
        (``"1-avg"`` follows ``5``), so a step in the option list may change the network's kind.
        """
        if dc == 0:
            return ci
        plan = cell_plan(self._c_options[ci])
        value = dataclasses.replace(plan, cells=plan.cells + dc).value
        return self._c_options.index(value) if plan.cells + dc >= 0 and value in self._c_options else -1

    def _neighbours(self, cell: tuple[int, int]) -> list[tuple[int, int]]:
        ki, ci = cell
        s = self.k_step
        moves = [(-s, 0), (0, -1), (s, 0), (0, 1)]
        if self.diagonal:
            moves += [(-s, -1), (-s, 1), (s, -1), (s, 1)]
        out = [(ki + dk, self._c_index(ci, dc)) for dk, dc in moves]
        return [c for c in out if self._ok(c)]

    def _first_feasible(self) -> tuple[int, int]:
        if self._ok(self._start):
            return self._start
        # smallest networks first: by c, then k
        for ci in range(len(self._c_options)):
            for ki in range(len(self._k_options)):
                if self._ok((ki, ci)):
                    return (ki, ci)
        raise SearchError(
            "nanonas found no feasible (k, c) at all: even the smallest network breaks the budgets; "
            "relax them, use a smaller input, or pick a board with more room"
        )

    # -- ask / tell -------------------------------------------------------------------------------
    def _propose(self, n: int) -> list[Arch]:
        if self._done:
            return []
        if self._current is None and not self._queue:
            self._queue = [self._first_feasible()]
        out = []
        for cell in self._queue:
            if len(out) >= n:
                break
            arch = self._arch(cell)
            if arch.id not in self._seen:
                out.append(arch)
        return out

    def _observe(self, arch: Arch, result: Observation) -> None:
        self._results[arch.id] = float(result.accuracy) if result.usable else None
        self._latency[arch.id] = result.latency_ms
        if not self._queue or any(self._arch(c).id not in self._results for c in self._queue):
            return  # this round is not complete yet (or nothing was asked: just recorded)
        if self._current is None:
            self._current = self._queue[0]  # the start network; a failed start climbs from -inf
            self._current_accuracy = self._results[self._arch(self._current).id]
        else:
            self._step()
        self._next_round()

    def _step(self) -> None:
        best_cell, best_key = None, None
        for cell in self._queue:
            acc = self._results.get(self._arch(cell).id)
            if acc is None:
                continue
            lat = self._latency.get(self._arch(cell).id)
            key = (acc, -(lat if lat is not None else float("inf")))
            if best_key is None or key > best_key:
                best_cell, best_key = cell, key
        current = self._current_accuracy if self._current_accuracy is not None else float("-inf")
        if best_cell is not None and best_key[0] > current + self.min_improvement:
            self._current, self._current_accuracy = tuple(best_cell), best_key[0]
        else:
            self._done = True  # local optimum: no neighbour improves

    def _next_round(self) -> None:
        self._queue = []
        if self._done or self._current is None:
            return
        fresh = [c for c in self._neighbours(self._current) if self._arch(c).id not in self._results]
        known = [c for c in self._neighbours(self._current) if self._arch(c).id in self._results]
        # neighbours evaluated in an earlier round need no new evaluation: judge them right away
        self._queue = fresh + known
        if not fresh:
            self._step()
            self._next_round()

    @property
    def finished(self) -> bool:
        """At a local optimum, or every feasible (k, c) has been tried."""
        return self._done or self.exhausted

    @property
    def finish_note(self) -> str:
        if self._done and self._current is not None:
            k, c = self._arch(self._current)["k"], self._arch(self._current)["c"]
            return f"its hill climb reached a local optimum at k={k}, c={c}"
        return super().finish_note

    @property
    def current(self) -> Arch | None:
        """The network the climb stands on (the local optimum once ``finished``)."""
        return None if self._current is None else self._arch(self._current)

    # -- checkpointing ------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "current": None if self._current is None else list(self._current),
            "current_accuracy": self._current_accuracy,
            "results": self._results,
            "latency": self._latency,
            "queue": [list(c) for c in self._queue],
            "done": self._done,
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        cur = state.get("current")
        self._current = None if cur is None else (int(cur[0]), int(cur[1]))
        self._current_accuracy = state.get("current_accuracy")
        self._results = dict(state.get("results", {}))
        self._latency = dict(state.get("latency", {}))
        self._queue = [(int(a), int(b)) for a, b in state.get("queue", [])]
        self._done = bool(state.get("done", False))
