"""tinynas.cost: the analytic cost model (no TensorFlow): MACs, parameters, flash, TFLM arena, latency.

``estimate(graph, profile=...)`` is the entry point; the parts live in
``counts``, ``flash``, ``arena`` (+ ``planner``), ``latency`` and ``convert``.
"""

from tinynas.cost.model import estimate, estimate_tflite
from tinynas.cost.types import BudgetCheck, Cost

__all__ = ["estimate", "estimate_tflite", "Cost", "BudgetCheck"]
