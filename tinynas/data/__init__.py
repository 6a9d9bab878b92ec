"""Datasets: built-in offline sets, user folders and files, downloads; all split, scaled and fingerprinted.

``load_dataset(name_or_path, seed=...)`` is the one entry point; sources register
by name (``register_dataset``) or by path kind (``register_path_kind``).
"""

from tinynas.data.base import (
    DATASETS,
    PATH_KINDS,
    DatasetSource,
    RawData,
    coerce_options,
    dataset_names,
    dataset_sources,
    inspect_dataset,
    load_dataset,
    register_dataset,
    register_path_kind,
    resolve_source,
)
from tinynas.data.splits import stratified_split, stratified_subset
from tinynas.data.types import Dataset, InputScaling

__all__ = [
    "DATASETS", "PATH_KINDS", "Dataset", "DatasetSource", "InputScaling", "RawData", "coerce_options",
    "dataset_names", "dataset_sources", "inspect_dataset", "load_dataset", "register_dataset",
    "register_path_kind", "resolve_source", "stratified_split", "stratified_subset",
]
