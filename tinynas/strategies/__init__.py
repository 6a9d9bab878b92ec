"""Search strategies: ask/tell optimizers over any search space, behind one registry.

``make_strategy("evolution", space=space, seed=0, feasible=fits)`` gives a
strategy; the search stage asks it for archs, evaluates them and tells it the
``Observation``. Built-in: ``random``, ``evolution``, ``reinforce``, ``nanonas``
(the pipeline adds ``staged``). A new strategy subclasses ``Strategy`` and is
registered with ``@register_strategy``.
"""

from tinynas.strategies.base import (
    STRATEGIES,
    Observation,
    Strategy,
    get_strategy,
    make_strategy,
    register_strategy,
    strategy_hyperparameters,
    strategy_names,
)
from tinynas.strategies.pareto import pareto_indices

__all__ = [
    "STRATEGIES",
    "Observation",
    "Strategy",
    "get_strategy",
    "make_strategy",
    "pareto_indices",
    "register_strategy",
    "strategy_hyperparameters",
    "strategy_names",
]
