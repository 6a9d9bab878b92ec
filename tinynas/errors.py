"""One exception family for tinynas.

Every user-facing failure is a ``TinyNASError``: its message says what went
wrong and how to fix it, and the CLI prints it without a traceback.
"""

from __future__ import annotations


class TinyNASError(Exception):
    """Base of every error tinynas raises on purpose."""


class ProfileError(TinyNASError):
    """A hardware profile is missing, malformed or names an unknown target."""


class SpaceError(TinyNASError):
    """An architecture or search space is unknown, malformed or does not fit the input."""


class ModelFileError(TinyNASError):
    """A model file (``.tflite``, ``.keras``) cannot be read or is not what was expected."""


class CostError(TinyNASError):
    """The cost model cannot judge a graph (unknown op, bad shape)."""


class DatasetError(TinyNASError):
    """A dataset cannot be found, loaded or does not match what a command needs."""


class TrainError(TinyNASError):
    """Training failed or was configured wrongly."""


class DeployError(TinyNASError):
    """Quantization, validation, code or firmware generation failed."""


class DoesNotFitError(DeployError):
    """A model needs more SRAM, flash or time than the board has."""


class MeasureError(TinyNASError):
    """Talking to a board (or the emulator) over serial failed."""


class SearchError(TinyNASError):
    """A search, run or sweep is configured wrongly or cannot proceed."""


class ProxyError(TinyNASError):
    """A zero-cost proxy is unknown or could not be computed."""


class SupernetError(TinyNASError):
    """A once-for-all supernet cannot cover an arch, or its cache belongs to another run."""
