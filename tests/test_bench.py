"""The benchmark harness: the environment each contender's process gets, the
rotation of the rounds, the aggregation over rounds, and short end-to-end runs
of ``python -m bench`` whose reports have the expected rows and columns.  No
timing is asserted."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli, procs

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = ["case", "input (N,H,W,C)", "pass", "tinycnn ms", "GFLOP/s", "GB/s", "% GEMM peak",
           "ref ms", "vs ref", "torch NCHW ms", "vs NCHW", "torch CL ms", "vs CL"]
SOME_CASES = ["conv3x3 64@32x32", "conv3x3 512@4x4", "conv3x3 s2 64->128 @32x32",
              "conv1x1 s2 256->512 @8x8", "depthwise3x3 728@19x19",
              "pointwise1x1 728->728 @8x8", "maxpool 3x3 s2 p1", "avgpool 2x2 s2",
              "global avgpool", "batchnorm 128@16x16"]
N_CASES = 23  # 4 + 3 + 3 convs, 3 depthwise, 3 pointwise, 4 pools, global pool, 2 BN
TINYCNN_VARS = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in TINYCNN_VARS}
    env.update(extra)
    return env


def _run(args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=_clean_env() if env is None else env)


def _bench(*args, env=None):
    return _run(["-m", "bench", *args], env)


def _table(markdown, header_start):
    """The rows (lists of cells) of the markdown table whose header starts with ``header_start``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[0], rows[2:]  # header, body (skipping the |---| line)


def _first_number(cell):
    """'46.1 (44.0–47.2)' -> 46.1"""
    return float(cell.split()[0])


# -------------------------------------------------------- the environment


def test_child_env_keeps_what_the_user_set_and_drops_tinycnns_defaults():
    environ = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4", "PATH": "/bin", "OMP_NUM_THREADS": "2"}
    assert procs.child_env(environ, user={}) == {"PATH": "/bin", "OMP_NUM_THREADS": "2"}
    assert procs.child_env(environ, user={"OMP_WAIT_POLICY": "ACTIVE"}) == {
        "OMP_WAIT_POLICY": "ACTIVE", "PATH": "/bin", "OMP_NUM_THREADS": "2"}
    # a value the user set survives even where tinycnn's import has since dropped or changed it
    assert procs.child_env({"PATH": "/bin"}, user={"OPENBLAS_THREAD_TIMEOUT": "1"}) == {
        "PATH": "/bin", "OPENBLAS_THREAD_TIMEOUT": "1"}
    assert environ["OMP_WAIT_POLICY"] == "PASSIVE"  # the argument is not modified


def test_user_set_reads_the_start_up_environment_once_tinycnn_was_imported():
    now = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
    # bench imported first: what is in the environment is the user's
    assert procs.user_set(now, modules={}) == now
    # tinycnn imported first: its defaults are in os.environ; the process's start-up environment tells
    tinycnn_first = {"tinycnn._env": None}
    assert procs.user_set(now, tinycnn_first, lambda: {"OMP_WAIT_POLICY": "PASSIVE", "PATH": "/"}) == {
        "OMP_WAIT_POLICY": "PASSIVE"}
    assert procs.user_set(now, tinycnn_first, lambda: {}) == {}
    # ... or, where that is unreadable, the values other than tinycnn's defaults
    assert procs.user_set({"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}, tinycnn_first,
                          lambda: None) == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_tinycnn_sets_exactly_the_defaults_the_harness_removes():
    code = ("import json, os; import tinycnn; "
            f"print(json.dumps({{k: os.environ.get(k) for k in {list(TINYCNN_VARS)!r}}}))")
    done = _run(["-c", code])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == procs.TINYCNN_DEFAULTS
    assert set(procs.TINYCNN_DEFAULTS) == set(TINYCNN_VARS)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc/self/environ")
def test_the_snapshot_is_the_users_even_when_tinycnn_was_imported_first():
    code = ("import json, os, tinycnn; from bench import procs; os.environ['BENCH_LATER'] = '1'; "
            "print(json.dumps([procs.USER_SET, 'BENCH_LATER' in procs.startup_environ(), "
            f"{{k: v for k, v in procs.child_env().items() if k in {list(TINYCNN_VARS)!r}}}]))")
    done = _run(["-c", code], env=_clean_env(OMP_WAIT_POLICY="ACTIVE"))
    assert done.returncode == 0, done.stderr
    user, later_seen, child = json.loads(done.stdout)
    assert user == {"OMP_WAIT_POLICY": "ACTIVE"} and later_seen is False
    assert child == {"OMP_WAIT_POLICY": "ACTIVE"}  # tinycnn's OPENBLAS_THREAD_TIMEOUT=4 is not passed on


def test_importing_bench_and_building_its_parser_imports_no_engine():
    code = ("import sys, bench.cli; bench.cli.build_parser(); "
            "print(sorted(m for m in ('tinycnn', 'torch', 'numba') if m in sys.modules))")
    done = _run(["-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_thread_limit_follows_numba_num_threads():
    assert procs.thread_limit({"NUMBA_NUM_THREADS": "3"}) == 3
    assert procs.thread_limit({}) >= 1


# ------------------------------------------------- rounds and aggregation


def test_rounds_rotate_the_order_of_the_processes():
    names = ["tinycnn", "torch_nchw", "torch_channels_last"]
    assert procs.rotation(names, 0) == names
    assert procs.rotation(names, 1) == ["torch_nchw", "torch_channels_last", "tinycnn"]
    assert procs.rotation(names, 2) == ["torch_channels_last", "tinycnn", "torch_nchw"]
    assert procs.rotation(names, 3) == names
    calls = []
    results = procs.run_rounds(names, 3, lambda name, r: calls.append((r, name)) or f"{name}@{r}")
    assert calls == [(0, "tinycnn"), (0, "torch_nchw"), (0, "torch_channels_last"),
                     (1, "torch_nchw"), (1, "torch_channels_last"), (1, "tinycnn"),
                     (2, "torch_channels_last"), (2, "tinycnn"), (2, "torch_nchw")]
    assert results["tinycnn"] == ["tinycnn@0", "tinycnn@1", "tinycnn@2"]  # in round order


def test_summary_is_the_median_of_the_rounds_medians_with_min_and_max():
    assert procs.summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "rounds": [3.0, 1.0, 2.0]}
    assert procs.summarize([1.0, 4.0])["median"] == 2.5
    from bench import models

    s = models._summary([[1.0, 9.0, 2.0], [4.0, 4.0, 4.0], [0.5, 0.5, 8.0]], N=8)  # round medians 2, 4, 0.5
    assert s["round_medians_s"] == [2.0, 4.0, 0.5]
    assert s["median_s"] == 2.0 and s["min_s"] == 0.5 and s["max_s"] == 4.0
    assert s["images_per_s"] == 4.0 and s["images_per_s_min"] == 2.0 and s["images_per_s_max"] == 16.0


def _fake_process(engine):
    info = {"engine": engine, "numpy": "1", "import_order": "numpy-first", "env_given": {},
            "env_after_import": {}, "tinycnn_imported": engine == "tinycnn", "torch_imported": engine == "torch"}
    if engine == "tinycnn":
        info.update(numba="0", numba_threading_layer="omp", blas=[], threads=2)
    else:
        info.update(torch="2", threads=2, interop_threads=2)
    return info


def test_models_suite_with_a_mocked_child_rotates_and_reports_ratios_of_medians(monkeypatch, capsys):
    # seconds per call by (contender, round): tinycnn's medians 2, 1, 4 -> 2; torch NCHW's 4, 4, 4 -> 4
    seconds = {"tinycnn": [2.0, 1.0, 4.0], "tinycnn_unfused": [3.0, 3.0, 3.0], "torch_nchw": [4.0, 4.0, 4.0],
               "torch_channels_last": [1.0, 2.0, 1.0]}
    specs = []

    def fake_child(spec):
        specs.append(spec)
        if spec["task"] == "memory":
            return {"peak_mb": 100.0 if spec["engine"] == "tinycnn" else 200.0, "before_step_mb": 50.0,
                    "process": _fake_process(spec["engine"])}
        key = (spec["mode"], frozenset(spec["contenders"]))
        r = sum(1 for s in specs if s["task"] == "time" and (s["mode"], frozenset(s["contenders"])) == key) - 1
        return {"samples_s": {who: [seconds[who][r]] * spec["repeats"] for who in spec["contenders"]},
                "process": _fake_process(spec["engine"])}

    monkeypatch.setattr(procs, "run_child", fake_child)
    monkeypatch.setattr(cli, "_torch_installed", lambda: True)
    assert cli.main(["models", "--models", "resnet20", "--train-batch", "8", "--infer-batch", "8",
                     "--repeats", "2", "--threads", "1"]) == 0
    markdown = capsys.readouterr().out
    train = [s for s in specs if s["task"] == "time" and s["mode"] == "train"]
    assert [s["contenders"] for s in train] == [
        ["tinycnn"], ["torch_nchw"], ["torch_channels_last"],
        ["torch_nchw"], ["torch_channels_last"], ["tinycnn"],
        ["torch_channels_last"], ["tinycnn"], ["torch_nchw"]]
    assert {s["engine"] for s in train if s["contenders"] == ["tinycnn"]} == {"tinycnn"}
    assert {s["engine"] for s in train if s["contenders"] != ["tinycnn"]} == {"torch"}
    assert all(s["threads"] == 1 and s["import_order"] == "numpy-first" for s in specs)
    infer = [s for s in specs if s["task"] == "time" and s["mode"] == "infer"]
    assert sorted(infer[0]["contenders"]) == ["tinycnn", "tinycnn_unfused"]  # one tinycnn process for both
    assert sorted(s["contenders"][0] for s in specs if s["task"] == "memory") == [
        "tinycnn", "torch_channels_last", "torch_nchw"]

    header, rows = _table(markdown, "| model | batch |")
    # images/s = 8 / median seconds: tinycnn 8/2 = 4.0 (8/4 = 2.0 to 8/1 = 8.0); NCHW 2.0; CL 8/1 = 8.0
    assert rows == [["ResNet-20 (CIFAR)", "8", "4.0 (2.0–8.0)", "2.0 (2.0–2.0)", "2.00", "8.0 (4.0–8.0)", "0.50"]]
    header, rows = _table(markdown, "| model | tinycnn (fused) |")
    assert rows[0][1:4] == ["4.0 (2.0–8.0)", "2.7 (2.7–2.7)", "1.50"]
    header, rows = _table(markdown, "| model | tinycnn | torch NCHW |")
    assert rows == [["ResNet-20 (CIFAR)", "100", "200", "0.50", "200"]]
    machine = markdown.splitlines()[2]
    assert "fresh process per configuration and round, 3 rounds" in machine
    assert "IN-PROCESS" not in markdown and "tinycnn not imported" in machine


# ------------------------------------------------------------ end to end


def test_kernels_in_process_reports_every_case_and_says_how_it_ran(tmp_path):
    md_path, json_path = tmp_path / "report.md", tmp_path / "report.json"
    result = _bench("kernels", "--in-process", "--rounds", "1", "--quick", "--repeats", "1", "--no-torch",
                    "--batch", "2", "--threads", "1", "--markdown", str(md_path), "--json", str(json_path))
    assert result.returncode == 0, result.stderr

    markdown = md_path.read_text()
    assert result.stdout == markdown
    lines = markdown.splitlines()
    assert lines[0] == "# tinycnn kernel benchmark (IN-PROCESS)"
    assert lines[2].startswith("Machine: ") and "1 threads" in lines[2] and "IN-PROCESS" in lines[2]
    assert "median" in markdown

    header, rows = _table(markdown, "| case |")
    assert header == COLUMNS
    assert "IN-PROCESS" in lines[lines.index("| " + " | ".join(COLUMNS) + " |") - 2]  # the table's title
    assert len(rows) == 2 * N_CASES
    assert all(len(row) == len(COLUMNS) for row in rows)
    assert [row[2] for row in rows] == ["fwd", "fwd+bwd"] * N_CASES
    names = [row[0] for row in rows]
    for name in SOME_CASES:
        assert names.count(name) == 2, name
    assert all(row[1].startswith("2×") for row in rows)  # batch 2
    assert all(row[9] == row[10] == row[11] == row[12] == "—" for row in rows)  # no torch

    split_header, split_rows = _table(markdown, "| step |")
    assert split_header[:2] == ["step", "ms"]
    assert len(split_rows) == 5  # Winograd route, im2col route and its three steps
    assert split_rows[0][0].startswith("conv2d_forward, Winograd")

    data = json.loads(json_path.read_text())
    assert data["machine_line"] == lines[2][len("Machine: "):]
    assert data["settings"]["batch"] == 2 and data["settings"]["threads"] == 1
    assert data["settings"]["torch"] is False and data["settings"]["in_process"] is True
    assert data["gemm_peak"]["gflops"] > 0
    results = data["results"]
    assert [(r["case"], r["pass"]) for r in results] == [(row[0], row[2]) for row in rows]
    for r in results:
        assert math.isfinite(r["ms"]) and r["ms"] > 0
        assert r["torch_nchw_ms"] is None and r["torch_channels_last_ms"] is None
        # at batch 2 --quick skips no reference; the ratio is the two medians' quotient
        assert math.isclose(r["speedup_vs_reference"], r["reference_ms"] / r["ms"])
        if r["group"] in ("conv", "pointwise", "depthwise"):
            assert math.isclose(r["gflops"], r["flops"] / r["ms"] / 1e6)
    conv = [r for r in results if r["case"] == "conv3x3 64@32x32"]
    assert conv[1]["flops"] == 3 * conv[0]["flops"] == 3 * 2 * 2 * 32 * 32 * 64 * 64 * 9


def test_kernels_time_tinycnn_and_torch_in_separate_clean_processes(tmp_path):
    pytest.importorskip("torch")
    json_path = tmp_path / "report.json"
    result = _bench("kernels", "--only", "global avgpool", "--rounds", "2", "--repeats", "1", "--batch", "2",
                    "--threads", "1", "--json", str(json_path))
    assert result.returncode == 0, result.stderr
    header, rows = _table(result.stdout, "| case |")
    assert [row[0] for row in rows] == ["global avgpool"] * 2
    assert all(row[9] != "—" and row[11] != "—" and "–" in row[3] for row in rows)  # torch timed, ranges
    data = json.loads(json_path.read_text())
    tiny, torch = data["machine"]["processes"]["tinycnn"], data["machine"]["processes"]["torch"]
    assert torch["tinycnn_imported"] is False and torch["env_given"] == torch["env_after_import"] == {}
    assert tiny["env_given"] == {} and tiny["env_after_import"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert tiny["threads"] == torch["threads"] == 1
    for r in data["results"]:
        assert len(r["rounds_ms"]["tinycnn"]["round_medians_ms"]) == 2
        assert len(r["rounds_ms"]["reference"]["round_medians_ms"]) == 1  # round 1 only
        assert math.isclose(r["vs_torch_channels_last"], r["torch_channels_last_ms"] / r["ms"])
    assert "fresh process per case and round, 2 rounds" in data["machine_line"]


def test_bad_arguments_are_refused_before_running():
    result = _bench("kernels", "--batch", "0")
    assert result.returncode == 2
    assert "--batch" in result.stderr and ">= 1" in result.stderr
    result = _bench("models", "--in-process", "--import-order", "tinycnn-first")
    assert result.returncode == 2 and "--import-order" in result.stderr


# ------------------------------------------------------------ models, startup


def test_models_suite_reports_training_inference_and_memory(tmp_path):
    md_path, json_path = tmp_path / "models.md", tmp_path / "models.json"
    result = _bench("models", "--no-torch", "--models", "xception_small", "--train-batch", "2",
                    "--infer-batch", "2", "--memory-batch", "2", "--repeats", "1", "--rounds", "2",
                    "--threads", "1", "--markdown", str(md_path), "--json", str(json_path))
    assert result.returncode == 0, result.stderr
    markdown = md_path.read_text()
    assert markdown.splitlines()[2].startswith("Machine: ")
    header, rows = _table(markdown, "| model | batch |")
    assert header == ["model", "batch", "tinycnn", "torch NCHW", "vs NCHW", "torch CL", "vs CL"]
    assert rows == [["Xception (small)", "2", rows[0][2], "—", "—", "—", "—"]]
    assert _first_number(rows[0][2]) > 0
    header, rows = _table(markdown, "| model | tinycnn (fused) |")
    assert len(rows) == 1 and _first_number(rows[0][1]) > 0 and _first_number(rows[0][2]) > 0
    header, rows = _table(markdown, "| model | tinycnn | torch NCHW | tinycnn / torch |")
    assert len(rows) == 1 and float(rows[0][1]) > 0

    data = json.loads(json_path.read_text())
    assert data["suite"] == "models" and data["settings"]["torch"] is False
    (r,) = data["results"]
    assert set(r["train"]["2"]) == {"tinycnn"}
    assert len(r["train"]["2"]["tinycnn"]["round_medians_s"]) == 2
    assert set(r["infer"]) == {"tinycnn", "tinycnn_unfused"}
    assert r["memory"]["tinycnn"]["peak_mb"] >= r["memory"]["tinycnn"]["before_step_mb"] > 0


def test_tinycnn_bench_passes_on_the_users_settings_not_tinycnns(tmp_path):
    # `tinycnn bench` has imported tinycnn (and set its defaults) before the benchmark starts
    json_path = tmp_path / "models.json"
    result = _run(["-m", "tinycnn", "bench", "models", "--no-torch", "--models", "resnet20", "--train-batch", "2",
                   "--infer-batch", "2", "--no-memory", "--repeats", "1", "--rounds", "1", "--threads", "1",
                   "--import-order", "tinycnn-first", "--json", str(json_path)],
                  env=_clean_env(OMP_WAIT_POLICY="ACTIVE"))
    assert result.returncode == 0, result.stderr
    data = json.loads(json_path.read_text())
    process = data["machine"]["processes"]["tinycnn"]
    assert data["machine"]["user_set_env"] == {"OMP_WAIT_POLICY": "ACTIVE"}
    assert process["env_given"] == {"OMP_WAIT_POLICY": "ACTIVE"}  # not tinycnn's OPENBLAS_THREAD_TIMEOUT
    assert process["env_after_import"] == {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
    assert process["import_order"] == "tinycnn-first" and "import tinycnn, then numpy" in data["machine_line"]
    assert process["numpy_preloaded"] is False


def test_startup_suite_times_fresh_processes(tmp_path):
    json_path = tmp_path / "startup.json"
    result = _bench("startup", "--cold-runs", "0", "--repeats", "1", "--batch", "2", "--threads", "1",
                    "--warm-cache-dir", str(tmp_path / "cache"), "--json", str(json_path))
    assert result.returncode == 0, result.stderr
    header, rows = _table(result.stdout, "| cache |")
    assert [row[0] for row in rows] == ["warm (Numba cache filled)"]
    data = json.loads(json_path.read_text())
    (run,) = data["warm"]
    assert run["total_s"] > run["step_s"] > 0 and data["cold"] == []


def test_tinycnn_bench_forwards_to_the_benchmarks():
    result = _run(["-m", "tinycnn", "bench", "--help"], cwd=ROOT.parent)
    assert result.returncode == 0, result.stderr
    for suite in ("kernels", "models", "startup"):
        assert suite in result.stdout
