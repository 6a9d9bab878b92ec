"""Import TensorFlow once, without its start-up chatter.

TensorFlow 2.21 writes oneDNN, CUDA-probe and absl lines straight to file
descriptor 2 while it imports and initialises its devices, before
``TF_CPP_MIN_LOG_LEVEL`` takes effect, which buries tinynas's own output. Every
module that needs TensorFlow or Keras calls ``quiet_import()`` first; only the
first call does any work.

It also drops TensorFlow's "N of the last M calls triggered tf.function
retracing" warning. tinynas builds many models and traced functions in one
process by design (every candidate's Keras model, every block signature of the
once-for-all supernet, tinynas.ofa.compiled), and TensorFlow's heuristic counts
the first trace of each new function as retracing: the warning would land in
every run's and sweep's output and tell the user nothing they can act on.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

_TF: Any = None


@contextmanager
def captured_fd2() -> Iterator[list[str]]:
    """File descriptor 2 redirected to a temporary file for the block: C++ libraries (TensorFlow, LiteRT)
    write there directly, past ``sys.stderr``. The list it yields gets what was written, on exit."""
    sys.stderr.flush()
    saved = os.dup(2)
    written: list[str] = []
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield written
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            written.append(captured.read().decode(errors="replace"))


class _FirstTraces(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_import() -> Any:
    """The ``tensorflow`` module, imported (and its CPU device started) with fd 2 silenced."""
    global _TF
    if _TF is not None:
        return _TF
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with captured_fd2():  # what TensorFlow writes there is dropped
        import tensorflow as tf

        tf.constant(0.0).numpy()  # device start-up logs its CUDA probe here
    logging.getLogger("tensorflow").addFilter(_FirstTraces())
    _TF = tf
    return tf
