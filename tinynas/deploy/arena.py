"""Ground truth for the arena: the smallest ``arena_size`` with which the real TFLite Micro
interpreter allocates and invokes a model.

Deploy validation and the cost model's tests use it. The binary search runs in a
child process because TFLM has crashed the whole process for very small arenas
(REFERENCE.md section 1); a crashed probe counts as "too small" and the search
resumes in a fresh child.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tinynas.errors import DeployError

log = logging.getLogger(__name__)

#: Where the search starts: below about 1 KiB TFLM has segfaulted for some models.
MIN_ARENA_BYTES = 1024
#: Give up above this (a model that needs more than 64 MiB is not an MCU model).
MAX_ARENA_BYTES = 64 * 1024 * 1024

# The child reads the model from a file, then prints one JSON line per probe so
# that the parent knows, if the child dies, which arena size killed it.
_CHILD = r"""
import json, sys, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from tflite_micro.python.tflite_micro import runtime

path, lo, hi, cap, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = open(path, "rb").read()

def probe(n):
    print(json.dumps({"try": n}), flush=True)
    print("@@probe", n, file=sys.stderr, flush=True)  # what TFLM writes to fd 2 after it is about this size
    try:
        it = runtime.Interpreter.from_bytes(data, arena_size=n)
        i = 0
        while True:
            try:
                d = it.get_input_details(i)
            except Exception:
                break
            it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
            i += 1
        it.invoke()
        ok = True
    except Exception as exc:
        ok = False
    print(json.dumps({"size": n, "ok": ok}), flush=True)
    return ok

# lo: largest size known to fail (or the start - 1); hi: a size known to work, or 0.
if hi == 0:
    n = start
    if n > cap:
        print(json.dumps({"error": "too large"}), flush=True)
        sys.exit(0)
    while not probe(n):
        lo = n
        n *= 2
        if n > cap:
            print(json.dumps({"error": "too large"}), flush=True)
            sys.exit(0)
    hi = n
while hi - lo > 1:
    mid = (lo + hi) // 2
    if probe(mid):
        hi = mid
    else:
        lo = mid
print(json.dumps({"result": hi}), flush=True)
"""


def _last_probe_stderr(stderr: str) -> str:
    """What TFLM wrote while preparing the model at the largest arena tried: the op and type it
    refused (``exp.cc:41 input->type != kTfLiteFloat32 (INT8 != FLOAT32)``), one line."""
    tail = stderr.rsplit("@@probe", 1)[-1].splitlines()[1:]
    lines = [line.strip() for line in tail if line.strip()]
    return "; ".join(dict.fromkeys(lines))[-400:]


def measure_arena_bytes(model_bytes: bytes, *, timeout_s: float = 600.0, source: str = "model") -> int:
    """The smallest arena (bytes) with which ``tflite_micro`` allocates ``model_bytes`` and
    runs one inference on zeros.

    The figure is for the installed x86-64 wheel (64-bit pointers); a 32-bit
    Cortex-M needs a few percent less. Raises DeployError when the model cannot
    be allocated at all (unsupported op) or the search times out, and for bytes that are
    not a whole ``.tflite`` model (truncated, corrupt), naming ``source`` (the file).
    """
    from tinynas.deploy.interpreter import check_model_file, check_tflm_aborts, check_tflm_ops
    from tinynas.errors import ModelFileError

    if not isinstance(model_bytes, (bytes, bytearray)):
        raise DeployError(f"{source}: measure_arena_bytes needs the bytes of a .tflite model")
    # A file that is not a model, or is cut short, is said to be so here: TFLM would only
    # fail to allocate it at every size, which points at memory instead of the file.
    try:
        check_model_file(bytes(model_bytes), source=source)
        check_tflm_aborts(bytes(model_bytes), source=source)
        check_tflm_ops(bytes(model_bytes), source=source)
    except ModelFileError as exc:
        raise DeployError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="tinynas_arena_") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(bytes(model_bytes))
        lo, hi, start = MIN_ARENA_BYTES - 1, 0, MIN_ARENA_BYTES
        crashes: list[str] = []
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        for _attempt in range(64):
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(path), str(lo), str(hi), str(MAX_ARENA_BYTES), str(start)],
                    capture_output=True, text=True, timeout=timeout_s, env=env,
                )
            except subprocess.TimeoutExpired:
                raise DeployError(f"{source}: the arena search took more than {timeout_s:g} s; "
                                  "is the model very large?") from None
            last_try = None
            for line in proc.stdout.splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if "result" in rec:
                    return int(rec["result"])
                if "error" in rec:
                    if crashes:
                        raise DeployError(
                            f"{source}: the TFLite Micro interpreter crashed ({crashes[-1]}) at every arena size from "
                            f"{MIN_ARENA_BYTES} to {MAX_ARENA_BYTES} bytes tried; the model is likely malformed "
                            "or uses something TFLM cannot run (check it with the TFLM interpreter directly)"
                        )
                    said = _last_probe_stderr(proc.stderr)
                    raise DeployError(
                        f"{source}: TFLite Micro could not allocate this model with up to {MAX_ARENA_BYTES:,} bytes: "
                        + (f"it says: {said}" if said else "it likely uses an op TFLM does not support or is not int8")
                    )
                if "try" in rec:
                    last_try = int(rec["try"])
                elif "size" in rec:
                    last_try = None
                    if rec["ok"]:
                        hi = int(rec["size"])
                    else:
                        lo = max(lo, int(rec["size"]))
            if last_try is None:
                raise DeployError(
                    f"{source}: the arena probe process failed (exit code {proc.returncode}): {proc.stderr.strip()[-500:]}"
                )
            # The child died while probing last_try: treat that size as too small and go on.
            crashes.append(f"exit code {proc.returncode}")
            log.debug("arena probe crashed at %d bytes (exit %s); continuing", last_try, proc.returncode)
            lo = max(lo, last_try)
            start = 2 * last_try  # while still looking for a size that works, keep doubling
            if hi and hi - lo <= 1:
                return hi
        raise DeployError(f"{source}: the arena search crashed too often; the model may be malformed")


_BREAKDOWN_CHILD = r"""
import sys, os
import numpy as np
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
it = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))
it.invoke()
it.print_allocations()
"""


def arena_breakdown(model_bytes: bytes, *, arena_size: int | None = None) -> dict[str, int]:
    """TFLM's own account of the arena (``print_allocations``), parsed: ``arena_size`` (the
    size it ran with), ``total``, ``head``, ``tail`` and one ``<bucket>`` entry (bytes used, alignment included) per allocation kind,
    such as ``TfLiteEvalTensor data`` or ``Persistent buffer data``.

    ``arena_size`` defaults to the measured minimum. ``total`` can be less than
    that minimum: while it plans, TFLM also needs temporary room in the head
    (allocation info and planner lists), which is freed afterwards. Raises DeployError if the
    interpreter cannot run the model with that arena.
    """
    import re

    size = measure_arena_bytes(model_bytes) if arena_size is None else int(arena_size)
    with tempfile.TemporaryDirectory(prefix="tinynas_arena_") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(bytes(model_bytes))
        proc = subprocess.run([sys.executable, "-c", _BREAKDOWN_CHILD, str(path), str(size)],
                              capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise DeployError(f"TFLite Micro could not run the model with a {size}-byte arena: "
                          f"{proc.stderr.strip()[-300:]}")
    out: dict[str, int] = {"arena_size": size}
    for line in proc.stderr.splitlines():
        m = re.search(r"Arena allocation (total|head|tail) (\d+) bytes", line)
        if m:
            out[m.group(1)] = int(m.group(2))
            continue
        m = re.search(r"'([^']+)' used (\d+) bytes", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    if "total" not in out:
        raise DeployError("could not parse TFLite Micro's print_allocations() output")
    return out
