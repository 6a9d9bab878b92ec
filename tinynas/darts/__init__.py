"""Differentiable architecture search (DARTS family) on weight-sharing supernets.

``search_cell`` runs DARTS, DrNAS or RobustDARTS on the NAS-Bench-201 cell
(``tinynas.darts.search``); the derived arch belongs to the ``nasbench201`` space.
TensorFlow is imported only when a search runs.
"""

from tinynas.darts.search import DartsConfig, DartsResult, derive_arch, early_stop_epoch, search_cell

__all__ = ["DartsConfig", "DartsResult", "derive_arch", "early_stop_epoch", "search_cell"]
