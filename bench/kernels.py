"""Kernel benchmark: tinycnn's Numba kernels against their NumPy twins and PyTorch CPU.

Shapes are the layers of ResNet-34 on CIFAR (32x32 inputs) and of Xception's
middle flow, float32, channels-last.  Each case is timed forward and
forward+backward.  Per case and round, tinycnn runs in a fresh process (beside
its NumPy reference, in round 1 only, and a GEMM probe) and PyTorch (NCHW and
channels_last, interleaved) in another, each with its engine's defaults and
the same thread count, over --rounds rounds in rotated order (``bench.procs``);
--in-process times them all in this process instead.  A default run takes
about 10 minutes on a 2-core machine.
"""

import datetime
import sys
import time

import numpy as np

from . import procs, timing
from .cases import ITEM, all_cases, fast_kernels, rand

DEFAULT_REPEATS = (5, 2)  # samples per contender and process (default, --quick); --rounds processes each
GEMM_SIZE = 2048   # the machine's GEMM peak, measured once, after the cases
PROBE_SIZE = 1024  # the GEMM timed in the same rounds as each compute-bound row
QUICK_REFERENCE_FLOPS = 1e9   # --quick: no reference above this many forward FLOPs...
QUICK_REFERENCE_BYTES = 64e6  # ...or this many bytes moved by the forward call


# ------------------------------------------------------------- measurements


def _ms(seconds):
    return None if seconds is None else seconds * 1e3


def _ratio(slow, fast):
    return None if slow is None or fast is None else slow / fast


def gemm_peak(repeats, rng):
    """Median GFLOP/s of ``numpy.matmul`` on float32 ``GEMM_SIZE``^3."""
    n = GEMM_SIZE
    a, b = rand(rng, (n, n)), rand(rng, (n, n))
    c = np.empty((n, n), dtype=np.float32)
    samples = timing.time_interleaved(
        {"gemm": timing.Contender(lambda: np.matmul(a, b, out=c), max(3, min(repeats, 10)))})
    t = timing.median(samples["gemm"])
    return {"shape": [n, n, n], "ms": _ms(t), "gflops": 2 * n ** 3 / t / 1e9,
            "samples_ms": [_ms(s) for s in samples["gemm"]]}


class GemmProbe:
    """A float32 ``numpy.matmul`` of ``PROBE_SIZE``^3 timed in the same rounds as a
    row's contenders, so that '% GEMM peak' divides two rates measured under the
    same load (on a shared machine a peak measured once can be off by 2-3x)."""

    def __init__(self, rng, n=PROBE_SIZE):
        self.a, self.b = rand(rng, (n, n)), rand(rng, (n, n))
        self.c = np.empty((n, n), dtype=np.float32)
        self.flops = 2 * n ** 3
        self.rates = []  # GFLOP/s of every row's probe median

    def __call__(self):
        np.matmul(self.a, self.b, out=self.c)

    def gflops(self, seconds):
        rate = self.flops / seconds / 1e9
        self.rates.append(rate)
        return rate


def im2col_split(N, repeats, rng, probe):
    """conv3x3 64@32x32 forward: the Winograd route (the default) against the
    im2col route, and the im2col route split into im2col and GEMM, each timed
    alone."""
    from tinycnn.kernels import conv

    def im2col_route():
        previous = conv.set_winograd(False)
        try:
            conv.conv2d_forward(x, w, None, 1, 1)
        finally:
            conv.set_winograd(previous)

    H, C, O = 32, 64, 64
    x = rand(rng, (N, H, H, C))
    w = rand(rng, (3, 3, C, O), (9 * C) ** -0.5)
    w2 = w.reshape(9 * C, O)
    rows = N * H * H
    cols = conv.im2col(x, 3, 1, 1)  # (rows, 9*C), filled: the GEMM reads real numbers
    y2 = np.empty((rows, O), dtype=np.float32)
    contenders = {
        "conv2d_forward, Winograd route (default)": lambda: conv.conv2d_forward(x, w, None, 1, 1),
        "conv2d_forward, im2col route (set_winograd(False))": im2col_route,
        "im2col, new buffer (public im2col)": lambda: conv.im2col(x, 3, 1, 1),
        "im2col into a reused buffer": lambda: conv._im2col_rows(
            x, cols, 0, N * H, 0, C, 3, 3, 1, 1, 1, 1, 1, 1, H, H),
        "GEMM (numpy.matmul, out=)": lambda: np.matmul(cols, w2, out=y2),
    }
    contenders = {k: timing.Contender(fn, repeats) for k, fn in contenders.items()}
    contenders["gemm probe"] = timing.Contender(probe, repeats)
    samples = timing.time_interleaved(contenders)
    peak = probe.gflops(timing.median(samples.pop("gemm probe")))
    flops = 2 * rows * 9 * C * O
    whole = timing.median(samples["conv2d_forward, im2col route (set_winograd(False))"])
    steps = []
    for name, s in samples.items():
        t = timing.median(s)
        is_gemm = name.startswith("GEMM") or name.startswith("conv2d")
        moved = ITEM * (x.size + cols.size) if name.startswith("im2col") else None
        steps.append({"step": name, "ms": _ms(t),
                      "gflops": flops / t / 1e9 if is_gemm else None,
                      "gbs": moved / t / 1e9 if moved else None,
                      "share_of_conv": t / whole,
                      "peak_fraction": flops / t / 1e9 / peak if is_gemm else None})
    return {"case": "conv3x3 64@32x32 forward", "x_shape": [N, H, H, C],
            "cols_shape": list(cols.shape), "gemm_probe_gflops": peak, "steps": steps}


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


PASSES = ("fwd", "fwd+bwd")


def _case(name):
    for case in all_cases():
        if case.name == name:
            return case
    raise ValueError(f"no benchmark case {name!r}")


def measure(spec):
    """Run in a contender's process (``bench.child``), or here with --in-process.

    ``spec["task"] == "case"``: ``{"samples_s": {pass: {who: [seconds per call]}}}``
    for ``spec["contenders"]`` (tinycnn, reference, torch_nchw,
    torch_channels_last) on case ``spec["case"]`` at batch ``spec["batch"]``,
    timed interleaved; with tinycnn, a compute-bound case also times the GEMM
    probe ("gemm_probe").  ``"extras"``: the GEMM peak and the im2col split."""
    rng = np.random.default_rng(0)
    if spec["task"] == "extras":
        probe = GemmProbe(rng)
        peak = gemm_peak(spec["repeats"], rng)
        return {"gemm_peak": peak, "im2col_split": im2col_split(spec["batch"], spec["repeats"], rng, probe)}
    case = _case(spec["case"])
    make, make_torch = case.prepare(spec["batch"], rng)
    fns = {}
    for who in spec["contenders"]:
        if who == "tinycnn":
            fns[who] = make(fast_kernels())
        elif who == "reference":
            from tinycnn.kernels import reference

            fns[who] = make(reference)
        else:
            import torch

            torch.manual_seed(0)
            fns[who] = make_torch(torch, who == "torch_channels_last")
    probe = GemmProbe(rng) if "tinycnn" in fns and case.compute_bound else None
    out = {}
    for i, pass_name in enumerate(PASSES):
        contenders = {who: timing.Contender(pair[i], spec["ref_repeats"], warmup=1) if who == "reference" else
                      timing.Contender(pair[i], spec["repeats"], warmup=2) for who, pair in fns.items()}
        if probe is not None:
            contenders["gemm_probe"] = timing.Contender(probe, spec["repeats"])
        out[pass_name] = timing.time_interleaved(contenders)
    return {"samples_s": out}


# ----------------------------------------------------------------- parent


def _spec(args, process_name, contenders, **fields):
    engine = "torch" if process_name == "torch" else "tinycnn"
    return dict(suite="kernels", engine=engine, contenders=list(contenders), threads=args.threads,
                import_order=args.import_order, repeats=args.repeats, ref_repeats=args.ref_repeats,
                batch=args.batch, **fields)


def _processes(args, with_reference, r):
    """``{process name: contenders}`` of round ``r``: the reference runs in round 1 only."""
    groups = {"tinycnn": ["tinycnn"] + (["reference"] if with_reference and r == 0 else [])}
    if args.torch:
        groups["torch"] = ["torch_nchw", "torch_channels_last"]
    if args.in_process:
        return {"in-process": [who for group in groups.values() for who in group]}
    return groups


def _run(args, spec, seen):
    if args.in_process:
        return measure(spec)
    result = procs.run_child(spec)
    seen.setdefault(spec["engine"], result["process"])
    return result


def _ms_summary(rounds):
    """Per-round sample lists (seconds) -> median/min/max over rounds of each round's median, in ms."""
    s = procs.summarize(_ms(timing.median(samples)) for samples in rounds)
    return {"median_ms": s["median"], "min_ms": s["min"], "max_ms": s["max"], "round_medians_ms": s["rounds"]}


def measure_case(case, args, seen, probe_rates):
    """Time one case (fwd and fwd+bwd) over the rounds; return two result dicts."""
    N = args.batch
    flops, bytes_fwd, bytes_bwd = case.cost(N)
    skip_ref = args.quick and ((flops or 0) > QUICK_REFERENCE_FLOPS or bytes_fwd > QUICK_REFERENCE_BYTES)

    def one(process_name, r):
        group = procs.rotation(_processes(args, not skip_ref, r)[process_name], r)
        return _run(args, _spec(args, process_name, group, task="case", case=case.name), seen)["samples_s"]

    per_process = procs.run_rounds(list(_processes(args, not skip_ref, 0)), args.rounds, one)
    out = []
    for pass_name, work_flops, moved in (
            ("fwd", flops, bytes_fwd),
            ("fwd+bwd", None if flops is None else 3 * flops, bytes_fwd + bytes_bwd)):
        per_contender = {}
        for rounds in per_process.values():
            for samples in rounds:
                for who, s in samples[pass_name].items():
                    per_contender.setdefault(who, []).append(s)
        summary = {who: _ms_summary(rounds) for who, rounds in per_contender.items()}
        med = {who: s["median_ms"] for who, s in summary.items()}
        peak = None
        if "gemm_probe" in med:
            peak = 2 * PROBE_SIZE ** 3 / (med.pop("gemm_probe") / 1e3) / 1e9
            probe_rates.append(peak)
        t = med["tinycnn"]
        gflops = None if work_flops is None else work_flops / (t / 1e3) / 1e9
        row = {
            "case": case.name, "group": case.group, "pass": pass_name,
            "x_shape": list(case.x_shape(N)),
            "ms": t,
            "gflops": gflops,
            "gbs": moved / (t / 1e3) / 1e9,
            "flops": work_flops, "bytes": moved,
            "gemm_probe_gflops": peak,
            "peak_fraction": gflops / peak if peak else None,
            "reference_ms": med.get("reference"),
            "speedup_vs_reference": _ratio(med.get("reference"), t),
            "torch_nchw_ms": med.get("torch_nchw"),
            "vs_torch_nchw": _ratio(med.get("torch_nchw"), t),
            "torch_channels_last_ms": med.get("torch_channels_last"),
            "vs_torch_channels_last": _ratio(med.get("torch_channels_last"), t),
            "rounds_ms": summary,
            "samples": {who: sum(len(s) for s in rounds) for who, rounds in per_contender.items()},
            "samples_ms": {who: [[round(_ms(v), 4) for v in s] for s in rounds]
                           for who, rounds in per_contender.items()},
        }
        out.append(row)
        _log(f"  {case.name:32s} {pass_name:8s} {row['ms']:9.3f} ms"
             + (f"  ref x{row['speedup_vs_reference']:.1f}" if row["reference_ms"] else "")
             + (f"  torch nchw x{row['vs_torch_nchw']:.2f} cl x{row['vs_torch_channels_last']:.2f}"
                if row["torch_nchw_ms"] else ""))
    return out


# ------------------------------------------------------------------ report


def _f(value, fmt):
    return "—" if value is None else format(value, fmt)


def _g(value):
    """Three significant figures or so, without exponents."""
    if value is None:
        return "—"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else \
        f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def _x(value):
    return "—" if value is None else _g(value) + "×"


COLUMNS = ["case", "input (N,H,W,C)", "pass", "tinycnn ms", "GFLOP/s", "GB/s", "% GEMM peak",
           "ref ms", "vs ref", "torch NCHW ms", "vs NCHW", "torch CL ms", "vs CL"]


def _with_range(r, who, fmt):
    """'median (min–max)' ms of ``who`` over the rounds, or '—'."""
    s = r["rounds_ms"].get(who)
    if s is None:
        return "—"
    if len(s["round_medians_ms"]) == 1:
        return format(s["median_ms"], fmt)
    return f"{format(s['median_ms'], fmt)} ({_g(s['min_ms'])}–{_g(s['max_ms'])})"


def _table_rows(results):
    rows = []
    for r in results:
        rows.append([
            r["case"], "×".join(str(s) for s in r["x_shape"]), r["pass"],
            _with_range(r, "tinycnn", ".3f"), _g(r["gflops"]),
            "—" if r["group"] in ("conv", "pointwise") else _g(r["gbs"]),
            _f(None if r["peak_fraction"] is None else 100 * r["peak_fraction"], ".0f"),
            _g(r["reference_ms"]), _x(r["speedup_vs_reference"]),
            _with_range(r, "torch_nchw", ".3f"), _x(r["vs_torch_nchw"]),
            _with_range(r, "torch_channels_last", ".3f"), _x(r["vs_torch_channels_last"]),
        ])
    return rows


def _how(args):
    """How the figures were taken, for the table titles."""
    if args.in_process:
        return f"IN-PROCESS, all contenders in one process; median (min–max) over {args.rounds} rounds"
    return (f"tinycnn and PyTorch each in a fresh process per case and round; median (min–max) over "
            f"{args.rounds} rounds")


def _notes(args, peak, probe_rates):
    if args.in_process:
        how = (f"IN-PROCESS (--in-process): tinycnn, its reference and PyTorch run in this one process, "
               "tinycnn imported, so PyTorch sees tinycnn's OMP_WAIT_POLICY and runs beside tinycnn's "
               "threads; PyTorch users do not run it this way. ")
    else:
        how = ("Per case and round, tinycnn runs in a fresh process and PyTorch (NCHW and channels_last "
               "taking turns) in another, each with its engine's defaults; the PyTorch process never imports "
               "tinycnn and gets none of its environment variables; the order of the two is rotated each "
               "round. ")
    notes = [
        how + f"Each process takes {args.repeats} sample(s) per contender, the contenders in it timed "
        f"interleaved (one call each per turn); a sample averages back-to-back calls until it lasts "
        f"{timing.MIN_SAMPLE_SECONDS * 1e3:.0f} ms. Warm-up calls (JIT, first-touch) are not timed. "
        f"Times are the **median over {args.rounds} rounds of each round's median**, (min–max) the "
        "fastest and slowest round.",
        f"The NumPy reference runs in round 1 only, in the tinycnn process, {args.ref_repeats} sample(s) "
        f"(it is slow; a reference call over {timing.SLOW_CALL_SECONDS:.0f} s counts as a sample).",
        "`fwd+bwd` = forward + gradient w.r.t. the input + gradient w.r.t. the weight "
        "(BatchNorm: weight and bias; pools: input only). PyTorch's `fwd` runs under "
        "`no_grad`; its `fwd+bwd` is `module(x).backward(gy)`.",
        "GFLOP/s counts 2 × multiply-adds (depthwise: 2·N·OH·OW·C·KH·KW); for fwd+bwd the "
        "FLOPs are counted as **3 × the forward FLOPs** (input and weight gradients each cost "
        "one forward).",
        "GB/s (memory-bound ops) counts the compulsory traffic: every array a call reads or "
        "writes counted once (max pool includes its int64 argmax); a kernel that passes over "
        "its input twice moves more than this.",
        f"% GEMM peak = the row's GFLOP/s over the rate of a float32 `numpy.matmul` "
        f"{PROBE_SIZE}³ timed in the same rounds of the tinycnn processes (load hits both alike; median "
        f"over the rows {timing.median(probe_rates):.1f} GFLOP/s). The {GEMM_SIZE}³ matmul measured "
        f"once, in a tinycnn process after the cases, ran at {peak['gflops']:.1f} GFLOP/s (median).",
        "`vs ref`, `vs NCHW`, `vs CL` are ratios of the medians: the other's time over tinycnn's time, "
        "so > 1 means tinycnn is faster and 0.50× means it takes twice as long. "
        "CL = PyTorch channels_last (input, gradient and module weights).",
    ]
    if args.quick:
        notes.append("--quick: the reference is skipped (—) for cases over "
                     f"{QUICK_REFERENCE_FLOPS / 1e9:.0f} GFLOP or {QUICK_REFERENCE_BYTES / 1e6:.0f} MB "
                     "per forward call.")
    if not args.torch:
        notes.append("PyTorch not timed (--no-torch, or not installed).")
    return notes


def _split_rows(split):
    return [[s["step"], _f(s["ms"], ".3f"), _g(s["gflops"]), _g(s["gbs"]),
             _f(100 * s["share_of_conv"], ".0f"),
             _f(None if s["peak_fraction"] is None else 100 * s["peak_fraction"], ".0f")]
            for s in split["steps"]]


# --------------------------------------------------------------------- CLI


def add_arguments(parser):
    from .cli import positive_int

    parser.add_argument("--batch", type=positive_int, default=32, help="batch size N (default 32)")
    parser.add_argument("--only", metavar="TEXT", action="append",
                        help="run only the cases whose name contains TEXT (repeatable)")
    procs.add_arguments(parser)


def run(args):
    """Run the kernel benchmark; return the report dict (see ``bench.report``)."""
    started, t0 = datetime.datetime.now(), time.perf_counter()
    cases = [c for c in all_cases() if not args.only or any(t in c.name for t in args.only)]
    if not cases:
        raise SystemExit(f"--only {args.only}: no case matches; cases are "
                         + ", ".join(c.name for c in all_cases()))
    seen, probe_rates, results = {}, [], []
    if args.in_process:
        given, order = procs.import_in_process(args.threads, args.torch)
    for i, case in enumerate(cases, 1):
        _log(f"[{i}/{len(cases)}] {case.name}")
        results += measure_case(case, args, seen, probe_rates)
    _log(f"GEMM peak (numpy.matmul float32 {GEMM_SIZE}^3), convolution routes and im2col + GEMM split...")
    extras = _run(args, _spec(args, "tinycnn", ["tinycnn"], task="extras"), seen)
    peak, split = extras["gemm_peak"], extras["im2col_split"]
    probe_rates.append(split["gemm_probe_gflops"])
    _log(f"  GEMM peak {peak['gflops']:.1f} GFLOP/s")
    if args.in_process:
        seen = {e: timing.engine_info(e, given, order) for e in ("tinycnn", "torch")
                if e == "tinycnn" or args.torch}
    host = timing.host_info(started)
    how = _how(args)
    return {
        "machine_line": timing.comparison_line(host, seen, args.in_process, args.rounds, unit="case"),
        "machine": {**host, "processes": seen, "user_set_env": procs.USER_SET},
        "suite": "kernels",
        "title": "tinycnn kernel benchmark" + (" (IN-PROCESS)" if args.in_process else ""),
        "command": args.command_line,
        "settings": {"batch": args.batch, "dtype": "float32", "repeats": args.repeats,
                     "reference_repeats": args.ref_repeats, "threads": args.threads, "rounds": args.rounds,
                     "in_process": args.in_process, "import_order": args.import_order,
                     "quick": args.quick, "torch": args.torch, "only": args.only,
                     "elapsed_s": round(time.perf_counter() - t0, 1)},
        "notes": _notes(args, peak, probe_rates),
        "gemm_peak": peak,
        "gemm_probe": {"shape": [PROBE_SIZE] * 3, "median_gflops": timing.median(probe_rates),
                       "max_gflops": max(probe_rates)},
        "results": results,
        "im2col_split": split,
        "tables": [
            {"title": f"Kernels (batch {args.batch}, float32, {args.threads} threads; median ms; {how})",
             "columns": COLUMNS, "rows": _table_rows(results)},
            {"title": f"Convolution routes and the im2col + GEMM split: conv3x3 64@32x32 "
                      f"forward, batch {args.batch} (columns {split['cols_shape'][0]}×"
                      f"{split['cols_shape'][1]}; GFLOP/s of the Winograd row counts the "
                      "direct convolution's FLOPs; tinycnn only, one "
                      + ("in-process run" if args.in_process else "fresh tinycnn process") + ")",
             "columns": ["step", "ms", "GFLOP/s", "GB/s", "% of im2col route",
                         "% GEMM peak"],
             "rows": _split_rows(split)},
        ],
    }
