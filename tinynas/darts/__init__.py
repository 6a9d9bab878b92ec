"""Differentiable architecture search (DARTS family) on weight-sharing supernets.

``search_cell`` runs DARTS, DrNAS or RobustDARTS on the NAS-Bench-201 cell
(``tinynas.darts.search``); the derived arch belongs to the ``nasbench201`` space.
``search_layerwise`` runs the same loop on a layer-wise supernet of mcunet around a
base arch (``tinynas.darts.layerwise``, ``relax``).
TensorFlow is imported only when a search runs.
"""

from tinynas.darts.layerwise import LayerwisePlan, relax
from tinynas.darts.layerwise_search import search_layerwise
from tinynas.darts.search import DartsConfig, DartsResult, derive_arch, early_stop_epoch, search_cell

__all__ = ["DartsConfig", "DartsResult", "LayerwisePlan", "derive_arch", "early_stop_epoch", "relax",
           "search_cell", "search_layerwise"]
