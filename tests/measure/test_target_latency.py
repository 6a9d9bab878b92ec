"""`tinynas measure --on`: real LiteRT and ONNX Runtime on this machine, and fake adb/ssh/scp/trtexec
executables on PATH that replay the real tools' output formats and fail the ways real ones do."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.errors import MeasureError
from tinynas.measure.runner import LatencyReport, MeasurementFailed
from tinynas.measure.target import measure_on_target, parse_target

BENCHMARK_MODEL_OUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [{threads}]
INFO: Graph: [{graph}]
INFO: Loaded model {graph}
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 0.021
INFO: Initialized session in 5.685ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=24 first=45245 curr=21230 min=20980 max=45245 avg=22227.5 std=4810

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=21135 curr=20876 min=20641 max=21781 avg=20940.8 std=217

INFO: Inference timings in us: Init: 5685, First inference: 45245, Warmup (avg): 22227.5, Inference (avg): 20940.8
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=3.23 overall=9.51
"""

TRTEXEC_OUT = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=model.onnx
[12/03/2026-10:00:00] [I] === Performance summary ===
[12/03/2026-10:00:00] [I] Throughput: 2478.95 qps
[12/03/2026-10:00:00] [I] Latency: min = 0.41687 ms, max = 0.593262 ms, mean = 0.429016 ms, median = 0.42627 ms, percentile(90%) = 0.435059 ms, percentile(95%) = 0.437988 ms, percentile(99%) = 0.457764 ms
[12/03/2026-10:00:00] [I] GPU Compute Time: min = 0.389648 ms, max = 0.555908 ms, mean = 0.401428 ms, median = 0.399414 ms, percentile(90%) = 0.406738 ms, percentile(95%) = 0.409668 ms, percentile(99%) = 0.427246 ms
[12/03/2026-10:00:00] [I] Total GPU Compute Time: 2.98344 s
[12/03/2026-10:00:00] [I] Explanations of the performance metrics are printed in the verbose logs.
&&&& PASSED TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=model.onnx
"""

# What `python3 -m ai_edge_litert.tools.benchmark_litert_model --result_json=F` writes to F.
RESULT_JSON = json.dumps({
    "model": "/tmp/model.tflite", "model_size_mb": 0.02, "accelerators": ["CPU"], "signature": "serving_default",
    "fully_accelerated": True, "num_threads": 4,
    "latency": {"init_ms": 3.1, "warmup_first_ms": 2.9, "warmup_avg_ms": 2.1, "num_warmup_runs": 5, "avg_ms": 1.87,
                "min_ms": 1.8, "max_ms": 2.4, "median_ms": 1.85, "std_ms": 0.1, "p5_ms": 1.81, "p95_ms": 2.2,
                "num_runs": 50},
    "throughput_mb_s": 10.7}, indent=2)

# One script serves as adb, ssh, scp and trtexec: it logs its argv and answers as the real tool would,
# or fails the way FAKE_MODE (garbage) or its arguments (an unknown serial, a host named refuse.*) say.
FAKE_TOOL = r'''#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0]); args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([name, *args]) + "\n")
mode = os.environ.get("FAKE_MODE", "ok")
BENCH = {bench!r}
TRT = {trt!r}
RESULT_JSON = {result!r}
def out(text): sys.stdout.write(text); sys.exit(0)
if name == "adb":
    if args[:1] == ["-s"]:
        serial = args[1]; args = args[2:]
        if serial != "emulator-5554":
            sys.stderr.write("adb: device '%s' not found\n" % serial); sys.exit(1)
    if args[0] == "push":
        out("%s: 1 file pushed, 0 skipped. 3.1 MB/s (21504 bytes in 0.007s)\n" % args[1])
    if args[0] == "shell":
        if mode == "garbage":
            out("Segmentation fault\n")
        cmd = args[1].split()
        threads = [a.split("=")[1] for a in cmd if a.startswith("--num_threads=")][0]
        graph = [a.split("=")[1] for a in cmd if a.startswith("--graph=")][0]
        out(BENCH.format(threads=threads, graph=graph))
if name in ("ssh", "scp"):
    if any("refuse" in a for a in args):
        sys.stderr.write("ssh: connect to host refuse.example port 22: Connection refused\n"); sys.exit(255)
    if name == "scp":
        sys.exit(0)
    remote = args[-1]
    if remote.startswith("cat "):
        out(RESULT_JSON)
    if "benchmark_litert_model" in remote and mode == "garbage":
        sys.stderr.write("Traceback (most recent call last):\nModuleNotFoundError: No module named 'ai_edge_litert'\n")
        sys.exit(1)
    if "benchmark_litert_model" in remote:
        out("=" * 40 + "\n BENCHMARK RESULTS\n" + "=" * 40 + "\nInference (avg):       1.87 ms (50 runs)\n")
    if "--onnx=" in remote:
        out(TRT)
    out(BENCH.format(threads=remote.split("--num_threads=")[1].split()[0], graph="m"))
if name == "trtexec":
    if mode == "garbage":
        out("[I] Building engine\n[E] oops\n")
    out(TRT)
sys.exit(3)
'''


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """adb, ssh, scp and trtexec first on PATH; returns a function that reads the calls they got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    body = FAKE_TOOL.format(python=sys.executable, bench=BENCHMARK_MODEL_OUT, trt=TRTEXEC_OUT, result=RESULT_JSON)
    for name in ("adb", "ssh", "scp", "trtexec"):
        path = bin_dir / name
        path.write_text(body)
        path.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return lambda: [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def fake_tflite(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))  # the device never looks inside in these tests
    return path


@pytest.fixture
def fake_onnx(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07" + bytes(64))
    return path


# -- target strings -------------------------------------------------------------------------------

def test_parse_target_forms():
    assert str(parse_target("host")) == "host"
    assert parse_target("adb").address is None
    assert parse_target("adb:emulator-5554").address == "emulator-5554"
    assert parse_target("ssh:pi@rpi4.local").address == "pi@rpi4.local"
    for bad, words in (("ftp:x", "unknown target 'ftp'"), ("ssh", "ssh needs a host"),
                       ("ssh:-oProxyCommand=x", "ssh needs a host"), ("host:x", "host takes no address")):
        with pytest.raises(MeasureError, match=words):
            parse_target(bad)


# -- adb -------------------------------------------------------------------------------------------

def test_adb_pushes_runs_benchmark_model_and_parses(fake_tools, fake_tflite, tmp_path):
    report = measure_on_target(target="adb:emulator-5554", model=fake_tflite, profile="rpi4",
                               benchmark_binary="/data/local/tmp/benchmark_model", runs=50, warmup=3,
                               run_dir=tmp_path / "run")
    assert report.complete and report.target == "adb:emulator-5554" and report.threads == 4
    assert report.latency_ms == pytest.approx(20.9408) and report.min_ms == pytest.approx(20.641)
    assert report.stats_ms["first_ms"] == pytest.approx(45.245) and report.inferences_per_window == 50
    calls = fake_tools()
    assert calls[0] == ["adb", "-s", "emulator-5554", "push", str(fake_tflite), "/data/local/tmp/model.tflite"]
    shell = calls[1][4].split()
    assert calls[1][:4] == ["adb", "-s", "emulator-5554", "shell"] and shell[0] == "/data/local/tmp/benchmark_model"
    assert {"--num_threads=4", "--use_xnnpack=true", "--num_runs=50", "--warmup_runs=3",
            "--graph=/data/local/tmp/model.tflite"} <= set(shell)
    saved = LatencyReport.load(tmp_path / "run" / "measure" / "latency.json")
    assert saved.latency_ms == report.latency_ms and saved.command == report.command and saved.runtime


def test_adb_unknown_device_names_command_and_answer(fake_tools, fake_tflite, tmp_path):
    with pytest.raises(MeasurementFailed) as info:
        measure_on_target(target="adb:R58M123", model=fake_tflite, benchmark_binary="/data/local/tmp/bm",
                          run_dir=tmp_path)
    msg = str(info.value)
    assert "adb -s R58M123 push" in msg and "device 'R58M123' not found" in msg and "adb devices" in msg
    assert info.value.report.complete is False
    assert LatencyReport.load(tmp_path / "measure" / "latency.json").error == info.value.report.error


def test_adb_garbage_output_keeps_what_it_printed(fake_tools, fake_tflite, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "garbage")
    with pytest.raises(MeasurementFailed, match="(?s)no 'Inference timings in us.*Segmentation fault") as info:
        measure_on_target(target="adb", model=fake_tflite, benchmark_binary="/data/local/tmp/bm")
    assert "Segmentation fault" in info.value.report.output_tail
    assert info.value.report.command[:2] == ("adb", "shell")


def test_adb_needs_the_benchmark_binary(fake_tools, fake_tflite):
    with pytest.raises(MeasureError, match="--on adb needs --benchmark-binary"):
        measure_on_target(target="adb", model=fake_tflite)


def test_missing_tool_on_path(fake_tflite, fake_onnx, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MeasurementFailed, match="`adb` is not on PATH.*adb push"):
        measure_on_target(target="adb", model=fake_tflite, benchmark_binary="/x/bm")
    with pytest.raises(MeasurementFailed, match="`ssh` is not on PATH|`scp` is not on PATH"):
        measure_on_target(target="ssh:pi@rpi4.local", model=fake_tflite)
    with pytest.raises(MeasurementFailed, match="`trtexec` is not on PATH"):
        measure_on_target(target="trtexec", model=fake_onnx)


def _touch(path: Path) -> Path:
    path.write_bytes(b"x")
    return path


# -- ssh -------------------------------------------------------------------------------------------

def test_ssh_copies_with_batchmode_and_runs_litert_benchmark(fake_tools, fake_tflite):
    report = measure_on_target(target="ssh:pi@rpi4.local", model=fake_tflite, profile="rpi4", remote_dir="/tmp")
    assert report.complete and report.latency_ms == pytest.approx(1.85) and report.threads == 4
    assert report.stats_ms["mean_ms"] == pytest.approx(1.87) and report.inferences_per_window == 50
    scp, ssh, cat = fake_tools()
    assert scp[0] == "scp" and "BatchMode=yes" in scp and any(a.startswith("ConnectTimeout=") for a in scp)
    assert scp[-1] == "pi@rpi4.local:/tmp/model.tflite"
    assert ssh[0] == "ssh" and "BatchMode=yes" in ssh and ssh[-2] == "pi@rpi4.local"
    assert ssh[-1] == ("python3 -m ai_edge_litert.tools.benchmark_litert_model --model=/tmp/model.tflite "
                       "--num_threads=4 --num_runs=50 --warmup_runs=5 --result_json=/tmp/model.tflite.latency.json")
    assert cat[-1] == "cat /tmp/model.tflite.latency.json" and report.command == tuple(ssh)


def test_ssh_with_benchmark_binary_parses_its_text(fake_tools, fake_tflite):
    report = measure_on_target(target="ssh:pi@rpi4.local", model=fake_tflite, benchmark_binary="/opt/bm",
                               threads=2)
    assert report.latency_ms == pytest.approx(20.9408) and report.runtime == "litert benchmark_model"
    assert fake_tools()[-1][-1].startswith("/opt/bm --graph=/data/local/tmp/model.tflite --num_threads=2")


def test_ssh_onnx_runs_trtexec_on_the_board(fake_tools, fake_onnx):
    report = measure_on_target(target="ssh:nvidia@orin", model=fake_onnx, remote_dir="/tmp")
    assert report.runtime == "tensorrt trtexec" and report.latency_ms == pytest.approx(0.399414)
    assert fake_tools()[-1][-1].startswith("trtexec --onnx=/tmp/model.onnx")


def test_ssh_refused_says_so(fake_tools, fake_tflite, tmp_path):
    with pytest.raises(MeasurementFailed) as info:
        measure_on_target(target="ssh:pi@refuse.example", model=fake_tflite, run_dir=tmp_path)
    msg = str(info.value)
    assert "scp -o BatchMode=yes" in msg and "status 255" in msg and "Connection refused" in msg
    assert "key login" in msg and (tmp_path / "measure" / "latency.json").is_file()


def test_ssh_garbage_output(fake_tools, fake_tflite, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "garbage")
    with pytest.raises(MeasurementFailed, match="No module named 'ai_edge_litert'"):
        measure_on_target(target="ssh:pi@rpi4.local", model=fake_tflite)


# -- trtexec ---------------------------------------------------------------------------------------

def test_trtexec_parses_gpu_compute_time(fake_tools, fake_onnx, tmp_path):
    report = measure_on_target(target="trtexec", model=fake_onnx, runs=200, run_dir=tmp_path)
    assert report.latency_ms == pytest.approx(0.399414) and report.p90_ms == pytest.approx(0.406738)
    assert report.min_ms == pytest.approx(0.389648) and report.max_ms == pytest.approx(0.555908)
    # trtexec's --warmUp is milliseconds: 5 warm-up runs asked for get its 200 ms, not 5 ms; none gets none
    assert fake_tools()[0] == ["trtexec", f"--onnx={fake_onnx}", "--iterations=200", "--warmUp=200"]
    measure_on_target(target="trtexec", model=fake_onnx, runs=10, warmup=0, run_dir=tmp_path)
    assert fake_tools()[-1] == ["trtexec", f"--onnx={fake_onnx}", "--iterations=10", "--warmUp=0"]


def test_trtexec_builds_an_fp16_model_with_fp16_kernels(fake_tools, tmp_path):
    """deploy's model_fp16.onnx holds float16 weights; build_trt_engine.sh passes --fp16 for it, and so must
    measure, or TensorRT may time fp32 kernels."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def model(dtype, name):
        weight = numpy_helper.from_array(np.ones((1, 4), dtype=dtype), "w")
        kind = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
        graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", kind, [1, 4])],
                                  [helper.make_tensor_value_info("y", kind, [1, 4])], initializer=[weight])
        onnx.save(helper.make_model(graph), tmp_path / name)
        return tmp_path / name

    for dtype, name, extra in ((np.float16, "model_fp16.onnx", ["--fp16"]), (np.float32, "model_fp32.onnx", [])):
        measure_on_target(target="trtexec", model=model(dtype, name), runs=50, run_dir=tmp_path)
        assert fake_tools()[-1] == ["trtexec", f"--onnx={tmp_path / name}", "--iterations=50", "--warmUp=200",
                                    *extra]


def test_trtexec_garbage_and_wrong_model(fake_tools, fake_onnx, fake_tflite, monkeypatch):
    with pytest.raises(MeasureError, match="trtexec needs the .onnx"):
        measure_on_target(target="trtexec", model=fake_tflite)
    monkeypatch.setenv("FAKE_MODE", "garbage")
    with pytest.raises(MeasurementFailed, match=r"(?s)no 'GPU Compute Time: \.\.\.' line.*\[E\] oops"):
        measure_on_target(target="trtexec", model=fake_onnx)


# -- the command -----------------------------------------------------------------------------------

def test_cli_adb_json_and_exit_codes(fake_tools, fake_tflite, tmp_path):
    ok = CliRunner().invoke(cli, ["measure", "--on", "adb:emulator-5554", "--model", str(fake_tflite),
                                  "--benchmark-binary", "/data/local/tmp/benchmark_model", "--profile",
                                  "pixel8-cpu", "--run", str(tmp_path / "run"), "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["complete"] and data["threads"] == 1 and data["latency_ms"] == pytest.approx(20.9408)
    assert data["target"] == "adb:emulator-5554" and data["command"][:4] == ["adb", "-s", "emulator-5554", "shell"]
    table = CliRunner().invoke(cli, ["measure", "--on", "trtexec", "--model", str(tmp_path / "m.onnx")])
    assert table.exit_code != 0  # the file does not exist
    _touch(tmp_path / "m.onnx")
    table = CliRunner().invoke(cli, ["measure", "--on", "trtexec", "--model", str(tmp_path / "m.onnx")])
    assert table.exit_code == 0 and "latency (median)   0.399 ms" in table.output, table.output


def test_cli_failures_exit_1_with_partial_json(fake_tools, fake_tflite, tmp_path):
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "measure", "--on", "ssh:pi@refuse.example",
                           "--model", str(fake_tflite), "--json"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ssh:pi@refuse.example: copying the model")
    assert json.loads(proc.stdout)["complete"] is False
    both = CliRunner().invoke(cli, ["measure", "--on", "host", "--port", "/dev/ttyX"])
    neither = CliRunner().invoke(cli, ["measure"])
    no_model = CliRunner().invoke(cli, ["measure", "--on", "host"])
    assert both.exit_code == neither.exit_code == no_model.exit_code == 2
    assert "--on needs --model" in no_model.output
    mixed = CliRunner().invoke(cli, ["measure", "--on", "host", "--model", str(fake_tflite), "--baud", "9600"])
    assert mixed.exit_code == 2 and "--baud only applies to --port" in mixed.output
    mixed = CliRunner().invoke(cli, ["measure", "--port", "/dev/ttyX", "--runs", "3", "--threads", "2"])
    assert mixed.exit_code == 2 and "--runs, --threads only apply to --on" in mixed.output
    bad = CliRunner().invoke(cli, ["measure", "--on", "ftp:x", "--model", str(fake_tflite)])
    assert isinstance(bad.exception, MeasureError) and "unknown target 'ftp'" in str(bad.exception)


# -- parsers and timeouts --------------------------------------------------------------------------

def test_parsers_refuse_other_output():
    from tinynas.measure.bench_output import parse_benchmark_model, parse_litert_result_json, parse_trtexec

    with pytest.raises(MeasureError, match=r"(?s)x: not a benchmark_litert_model result.*<html>"):
        parse_litert_result_json("<html>login</html>", what="x")
    with pytest.raises(MeasureError, match="cannot read the mean"):
        parse_trtexec("[I] GPU Compute Time: min = 1 ms\n")
    t = parse_benchmark_model(BENCHMARK_MODEL_OUT.format(threads=1, graph="g"))
    assert (t.runs, t.init_ms, t.max_ms) == (50, pytest.approx(5.685), pytest.approx(21.781))


def test_a_hanging_tool_times_out(tmp_path, fake_onnx, monkeypatch):
    hang = tmp_path / "slowbin"
    hang.mkdir()
    (hang / "trtexec").write_text(f"#!{sys.executable}\nimport time\nprint('[I] Building engine', flush=True)\n"
                                  "time.sleep(30)\n")
    (hang / "trtexec").chmod(0o755)
    monkeypatch.setenv("PATH", str(hang))
    with pytest.raises(MeasurementFailed, match="did not finish within 1 s"):
        measure_on_target(target="trtexec", model=fake_onnx, timeout_s=1.0)
