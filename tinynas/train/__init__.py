"""The trainer: train a Graph on a Dataset under a budget, with a result cache so nothing trains twice."""

from tinynas.train.budget import TrainBudget, TrainResult
from tinynas.train.cache import TrainCache, cache_key, graph_signature
from tinynas.train.inputs import check_input_shape, fit_inputs
from tinynas.train.trainer import train_graph, train_keras_model

__all__ = ["TrainBudget", "TrainCache", "TrainResult", "cache_key", "check_input_shape", "fit_inputs",
           "graph_signature", "train_graph", "train_keras_model"]
