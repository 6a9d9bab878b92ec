"""Zero-cost proxies: score an untrained architecture in one forward/backward pass.

They sit between the cost model and the search: the prefilter drops what does
not fit, ranks the rest with these scores and hands the top K to a strategy.
"""

from tinynas.proxies.ensemble import DATA_ENSEMBLE, DEFAULT_ENSEMBLE, RankEnsemble
from tinynas.proxies.net import Batch, GraphNet
from tinynas.proxies.prefilter import PrefilterResult, ScoredArch, prefilter
from tinynas.proxies.registry import ProxyInput, ProxySpec, get_proxy, proxy_names, register_proxy
from tinynas.proxies.score import compute_proxy, score_arch, score_graph

__all__ = [
    "Batch", "DATA_ENSEMBLE", "DEFAULT_ENSEMBLE", "GraphNet", "PrefilterResult", "ProxyInput", "ProxySpec",
    "RankEnsemble", "ScoredArch", "compute_proxy", "get_proxy", "prefilter", "proxy_names", "register_proxy",
    "score_arch", "score_graph",
]
