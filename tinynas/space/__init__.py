"""Search spaces: ``Arch`` genotypes, the ``Graph`` IR, and the registry of spaces."""

from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace, get_space, register_space, space_names
from tinynas.space.graph import Graph, GraphBuilder, Op, Tensor

__all__ = [
    "Arch", "Decision", "Graph", "GraphBuilder", "Op", "SearchSpace", "Tensor",
    "get_space", "register_space", "space_names",
]
