"""Smoke test of ``python -m bench kernels``: it runs, and its markdown and JSON
reports have the expected rows and columns.  No timing is asserted."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = ["case", "input (N,H,W,C)", "pass", "tinycnn ms", "GFLOP/s", "GB/s", "% GEMM peak",
           "ref ms", "vs ref", "torch NCHW ms", "vs NCHW", "torch CL ms", "vs CL"]
SOME_CASES = ["conv3x3 64@32x32", "conv3x3 512@4x4", "conv3x3 s2 64->128 @32x32",
              "conv1x1 s2 256->512 @8x8", "depthwise3x3 728@19x19",
              "pointwise1x1 728->728 @8x8", "maxpool 3x3 s2 p1", "avgpool 2x2 s2",
              "global avgpool", "batchnorm 128@16x16"]
N_CASES = 23  # 4 + 3 + 3 convs, 3 depthwise, 3 pointwise, 4 pools, global pool, 2 BN


def _bench(*args):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


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


def test_kernels_quick_reports_every_case_in_markdown_and_json(tmp_path):
    md_path, json_path = tmp_path / "report.md", tmp_path / "report.json"
    result = _bench("kernels", "--quick", "--repeats", "1", "--no-torch", "--batch", "2",
                    "--threads", "1", "--markdown", str(md_path), "--json", str(json_path))
    assert result.returncode == 0, result.stderr

    markdown = md_path.read_text()
    assert result.stdout == markdown
    lines = markdown.splitlines()
    assert lines[0] == "# tinycnn kernel benchmark"
    assert lines[2].startswith("Machine: ") and "1 threads" in lines[2]
    assert "median" in markdown

    header, rows = _table(markdown, "| case |")
    assert header == COLUMNS
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
    assert data["settings"]["torch"] is False
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


def test_bad_arguments_are_refused_before_running():
    result = _bench("kernels", "--batch", "0")
    assert result.returncode == 2
    assert "--batch" in result.stderr and ">= 1" in result.stderr


# ------------------------------------------------------------ models, startup


def test_models_suite_reports_training_inference_and_memory(tmp_path):
    md_path, json_path = tmp_path / "models.md", tmp_path / "models.json"
    result = _bench("models", "--no-torch", "--models", "xception_small", "--train-batch", "2",
                    "--infer-batch", "2", "--memory-batch", "2", "--repeats", "1", "--threads", "1",
                    "--markdown", str(md_path), "--json", str(json_path))
    assert result.returncode == 0, result.stderr
    markdown = md_path.read_text()
    assert markdown.splitlines()[2].startswith("Machine: ")
    header, rows = _table(markdown, "| model | batch |")
    assert header == ["model", "batch", "tinycnn", "torch NCHW", "vs NCHW", "torch CL", "vs CL"]
    assert rows == [["Xception (small)", "2", rows[0][2], "—", "—", "—", "—"]]
    assert float(rows[0][2]) > 0
    header, rows = _table(markdown, "| model | tinycnn (fused) |")
    assert len(rows) == 1 and float(rows[0][1]) > 0 and float(rows[0][2]) > 0
    header, rows = _table(markdown, "| model | tinycnn | torch NCHW | tinycnn / torch |")
    assert len(rows) == 1 and float(rows[0][1]) > 0

    data = json.loads(json_path.read_text())
    assert data["suite"] == "models" and data["settings"]["torch"] is False
    (r,) = data["results"]
    assert set(r["train"]["2"]) == {"tinycnn"}
    assert set(r["infer"]) == {"tinycnn", "tinycnn_unfused"}
    assert r["memory"]["tinycnn"]["peak_mb"] >= r["memory"]["tinycnn"]["before_step_mb"] > 0


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
    result = subprocess.run([sys.executable, "-m", "tinycnn", "bench", "--help"], capture_output=True,
                            text=True, cwd=ROOT.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    for suite in ("kernels", "models", "startup"):
        assert suite in result.stdout
