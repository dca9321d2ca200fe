"""Whole models: training-step and inference images/s, and peak resident memory.

Models: ResNet-18 and ResNet-34 (cifar stem), SE-ResNet-18 (cifar stem) and
``xception_small`` by default (``resnet20``, the CIFAR ResNet-20, on request),
10 classes, 32x32x3 float32 input.  A training step is forward, cross-entropy,
backward and an SGD step with momentum 0.9.  Inference is eval mode under
``no_grad`` (tinycnn: BatchNorm folded into the convolutions, bias + ReLU
fused; also timed unfused, in the same process).  PyTorch runs the same
networks (``bench.torch_models``) in its default NCHW layout and in
channels_last.  Each contender (tinycnn, torch NCHW, torch channels_last) runs
each configuration (model, training or inference, batch) in its own fresh
process with its engine's defaults, over --rounds rotated rounds
(``bench.procs``); --in-process times them all in this process instead.  Peak
resident memory is measured in a fresh process per model and contender (VmHWM
after two training steps).  A default run takes about 20 minutes on a 2-core
machine.
"""

import datetime
import sys
import time

import numpy as np

from . import procs, timing

# name -> (label, create_model name, kwargs)
MODELS = {
    "resnet18": ("ResNet-18 (cifar stem)", "resnet18", {"stem": "cifar"}),
    "resnet34": ("ResNet-34 (cifar stem)", "resnet34", {"stem": "cifar"}),
    "se_resnet18": ("SE-ResNet-18 (cifar stem)", "se_resnet18", {"stem": "cifar"}),
    "xception_small": ("Xception (small)", "xception_small", {}),
    "resnet20": ("ResNet-20 (CIFAR)", "resnet20", {}),  # small: for quick checks of the harness
}
DEFAULT_MODELS = ("resnet18", "resnet34", "se_resnet18", "xception_small")
NUM_CLASSES, HW = 10, 32
DEFAULT_REPEATS = (3, 2)  # timed steps per process (default, --quick): a training step takes seconds
WARMUP_CALLS = 2          # untimed calls first in each process (cache loading, first-touch memory)
# The contenders one process of each kind times (interleaved): tinycnn's unfused inference runs beside its
# fused one, in the same tinycnn process.
PROCESSES = {"tinycnn": ("tinycnn",), "torch_nchw": ("torch_nchw",),
             "torch_channels_last": ("torch_channels_last",)}
INFER_EXTRA = {"tinycnn": ("tinycnn_unfused",)}


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _data(N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, HW, HW, 3), dtype=np.float32), rng.integers(0, NUM_CLASSES, N)


# ----------------------------------------------------------------- contenders


def tinycnn_model(name):
    import tinycnn
    from tinycnn.models import create_model

    tinycnn.manual_seed(0)
    _, factory, kwargs = MODELS[name]
    return create_model(factory, num_classes=NUM_CLASSES, **kwargs)


def tinycnn_train_step(model, N):
    """A callable running one training step of ``model`` on a fixed batch of N."""
    import tinycnn
    from tinycnn import functional as F
    from tinycnn.optim import SGD

    x, y = _data(N)
    x = tinycnn.Tensor(x)
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def tinycnn_infer(model, N, fused=True):
    import tinycnn
    from tinycnn.nn.fusion import fusion_disabled

    x = tinycnn.Tensor(_data(N)[0])
    model.eval()

    def infer():
        with tinycnn.no_grad():
            if fused:
                model(x)
            else:
                with fusion_disabled():
                    model(x)

    return infer


def _torch_input(torch, x, channels_last):
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    return t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def torch_model(torch, name, channels_last):
    from .torch_models import build

    torch.manual_seed(0)
    model = build(name, NUM_CLASSES)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def torch_train_step(torch, model, N, channels_last):
    x, y = _data(N)
    x, y = _torch_input(torch, x, channels_last), torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def torch_infer(torch, model, N, channels_last):
    x = _torch_input(torch, _data(N)[0], channels_last)
    model.eval()

    def infer():
        with torch.no_grad():
            model(x)

    return infer


# ------------------------------------------------- inside a contender's process


def _callable(who, name, mode, N):
    """The no-argument callable contender ``who`` times for one configuration."""
    if who.startswith("tinycnn"):
        model = tinycnn_model(name)
        if mode == "train":
            return tinycnn_train_step(model, N)
        return tinycnn_infer(model, N, fused=who == "tinycnn")
    import torch

    cl = who == "torch_channels_last"
    model = torch_model(torch, name, cl)
    return torch_train_step(torch, model, N, cl) if mode == "train" else torch_infer(torch, model, N, cl)


def measure(spec):
    """Run in a contender's process (``bench.child``), or here with --in-process.

    ``spec["task"] == "time"``: ``{"samples_s": {who: [seconds per call]}}`` of
    ``spec["contenders"]`` timed interleaved on ``spec["model"]``,
    ``spec["mode"]`` ("train" or "infer") at batch ``spec["batch"]``.
    ``"memory"``: the process's peak RSS around two training steps."""
    name, N = spec["model"], spec["batch"]
    if spec["task"] == "memory":
        (who,) = spec["contenders"]
        step = _callable(who, name, "train", N)
        before = vm_hwm_mb()
        step()
        step()
        return {"peak_mb": vm_hwm_mb(), "before_step_mb": before}
    contenders = {who: timing.Contender(_callable(who, name, spec["mode"], N), spec["repeats"], WARMUP_CALLS)
                  for who in spec["contenders"]}
    return {"samples_s": timing.time_interleaved(contenders)}


def vm_hwm_mb():
    """This process's peak resident set (VmHWM, MB).  Not ``ru_maxrss``: Linux carries
    that over from the parent across fork + exec, so a child would report the
    benchmark process's own size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# ----------------------------------------------------------------------- run


def _engine(process_name):
    return "torch" if process_name.startswith("torch") else "tinycnn"


def _spec(args, process_name, contenders, **fields):
    return dict(suite="models", engine=_engine(process_name), contenders=list(contenders),
                threads=args.threads, import_order=args.import_order, repeats=args.repeats, **fields)


def _processes(args, mode):
    """``{process name: contenders it times}``: one per engine and layout, or (--in-process) one for all."""
    groups = {p: PROCESSES[p] + (INFER_EXTRA.get(p, ()) if mode == "infer" else ()) for p in PROCESSES
              if args.torch or p == "tinycnn"}
    if args.in_process:
        return {"in-process": tuple(who for group in groups.values() for who in group)}
    return groups


def _summary(per_round, N):
    """One contender's figures from its per-round sample lists: the median over rounds of each
    round's median, min and max over rounds, and images/s."""
    s = procs.summarize(timing.median(samples) for samples in per_round)
    return {"median_s": s["median"], "min_s": s["min"], "max_s": s["max"], "round_medians_s": s["rounds"],
            "samples_s": per_round, "images_per_s": N / s["median"],
            "images_per_s_min": N / s["max"], "images_per_s_max": N / s["min"]}


def measure_config(name, mode, N, args, seen):
    """Time one configuration over the rounds; ``{contender: summary}``.  ``seen``
    collects each engine's process description (the first one run)."""
    processes = _processes(args, mode)

    def one(process_name, r):
        group = procs.rotation(processes[process_name], r)
        spec = _spec(args, process_name, group, task="time", model=name, mode=mode, batch=N)
        if args.in_process:
            result = measure(spec)
        else:
            result = procs.run_child(spec)
            seen.setdefault(spec["engine"], result["process"])
        rates = ", ".join(f"{who} {N / timing.median(s):.1f}" for who, s in result["samples_s"].items())
        _log(f"    round {r + 1}/{args.rounds}: {rates} img/s")
        return result["samples_s"]

    per_process = procs.run_rounds(list(processes), args.rounds, one)
    per_contender = {}
    for rounds in per_process.values():
        for samples in rounds:
            for who, s in samples.items():
                per_contender.setdefault(who, []).append(s)
    order = [who for group in _processes(args, mode).values() for who in group]
    return {who: _summary(per_contender[who], N) for who in order}


def measure_model(name, args, seen):
    """Training at each batch size, inference, peak memory: one result dict."""
    result = {"model": name, "label": MODELS[name][0], "train": {}, "infer": None, "memory": {}}
    for N in args.train_batch:
        _log(f"  train, batch {N}")
        result["train"][N] = measure_config(name, "train", N, args, seen)
    _log(f"  inference, batch {args.infer_batch}")
    result["infer"] = measure_config(name, "infer", args.infer_batch, args, seen)
    if not args.no_memory:
        for who in (p for p in PROCESSES if args.torch or p == "tinycnn"):
            _log(f"  peak memory, {who}, batch {args.memory_batch}")
            spec = _spec(args, who, [who], task="memory", model=name, batch=args.memory_batch)
            memory = procs.run_child(spec)
            process = memory.pop("process")
            if not args.in_process:
                seen.setdefault(spec["engine"], process)
            result["memory"][who] = memory
    return result


def _f(value, fmt):
    return "—" if value is None else format(value, fmt)


def _rate(res, who):
    """'median (min–max)' images/s of ``who``, or '—'."""
    if who not in res:
        return "—"
    r = res[who]
    return f"{r['images_per_s']:.1f} ({r['images_per_s_min']:.1f}–{r['images_per_s_max']:.1f})"


def _vs(res, who, base="tinycnn"):
    """Ratio of medians: ``base`` images/s over ``who``'s (> 1: ``base`` faster)."""
    return _f(res[who]["median_s"] / res[base]["median_s"] if who in res else None, ".2f")


def _rows(results):
    train_rows, infer_rows, memory_rows = [], [], []
    for r in results:
        for N, res in r["train"].items():
            train_rows.append([r["label"], N, _rate(res, "tinycnn"), _rate(res, "torch_nchw"),
                               _vs(res, "torch_nchw"), _rate(res, "torch_channels_last"),
                               _vs(res, "torch_channels_last")])
        res = r["infer"]
        infer_rows.append([r["label"], _rate(res, "tinycnn"), _rate(res, "tinycnn_unfused"),
                           _vs(res, "tinycnn_unfused"), _rate(res, "torch_nchw"), _vs(res, "torch_nchw"),
                           _rate(res, "torch_channels_last"), _vs(res, "torch_channels_last")])
        if r["memory"]:
            mem = {who: m["peak_mb"] for who, m in r["memory"].items()}
            t = mem["tinycnn"]
            memory_rows.append([r["label"], _f(t, ".0f"), _f(mem.get("torch_nchw"), ".0f"),
                                _f(t / mem["torch_nchw"] if "torch_nchw" in mem else None, ".2f"),
                                _f(mem.get("torch_channels_last"), ".0f")])
    return train_rows, infer_rows, memory_rows


def _batches(text):
    from .cli import positive_int

    return [positive_int(part) for part in text.split(",")]


def add_arguments(parser):
    from .cli import positive_int

    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated models (default {','.join(DEFAULT_MODELS)}; also: "
                             f"{','.join(n for n in MODELS if n not in DEFAULT_MODELS)})")
    parser.add_argument("--train-batch", type=_batches, default=[32, 128],
                        help="training batch sizes, comma-separated (default 32,128)")
    parser.add_argument("--infer-batch", type=positive_int, default=128,
                        help="inference batch size (default 128)")
    parser.add_argument("--memory-batch", type=positive_int, default=128,
                        help="batch size of the peak-memory runs (default 128)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    procs.add_arguments(parser)


def _how(args):
    """How the figures were taken, for every table title."""
    if args.in_process:
        return f"IN-PROCESS, all contenders in one process; median (min–max) over {args.rounds} rounds"
    return f"a fresh process per contender and round; median (min–max) over {args.rounds} rounds"


def _notes(args):
    if args.in_process:
        how = (f"IN-PROCESS (--in-process): every contender runs in this one process, tinycnn imported, so "
               "PyTorch sees tinycnn's OMP_WAIT_POLICY and runs beside tinycnn's threads; PyTorch users do "
               f"not run it this way. In each of {args.rounds} rounds the contenders take turns (one call "
               f"each), {args.repeats} timed call(s) each after {WARMUP_CALLS} untimed ones.")
    else:
        how = (f"Each contender (tinycnn, torch NCHW, torch channels_last) runs each configuration in its own "
               f"fresh process with its engine's defaults: {args.rounds} rounds, the order rotated by one each "
               "round; the PyTorch processes never import tinycnn and get none of its environment variables. "
               f"A process makes {WARMUP_CALLS} untimed calls, then {args.repeats} timed call(s); tinycnn's fused "
               "and unfused inference take turns in one tinycnn process.")
    notes = [
        how,
        "images/s = batch / the median over rounds of each round's median seconds per call; "
        "(min–max) = the slowest and fastest round.",
        "vs NCHW / vs CL = ratio of the medians, tinycnn images/s / torch images/s (> 1: tinycnn faster).",
        "Inference: tinycnn folds each BatchNorm into the convolution before it and fuses bias + ReLU "
        "(tinycnn.nn.fusion); 'unfused' runs the same model with fusion disabled.",
    ]
    if not args.no_memory:
        notes.append("Peak memory: VmHWM (peak RSS) of a fresh process (imports, model, optimizer, two training "
                     "steps), one per model and contender, with the same environment as the timed processes.")
    if not args.torch:
        notes.append("PyTorch not timed (--no-torch, or not installed).")
    return notes


def run(args):
    """Run the model benchmark; return the report dict (see ``bench.report``)."""
    started, t0 = datetime.datetime.now(), time.perf_counter()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise SystemExit(f"--models: unknown {unknown}; known: {', '.join(MODELS)}")
    seen = {}
    if args.in_process:
        given, order = procs.import_in_process(args.threads, args.torch)
    results = []
    for i, name in enumerate(names, 1):
        _log(f"[{i}/{len(names)}] {MODELS[name][0]}")
        results.append(measure_model(name, args, seen))
    if args.in_process:
        seen = {e: timing.engine_info(e, given, order) for e in ("tinycnn", "torch")
                if e == "tinycnn" or args.torch}
    train_rows, infer_rows, memory_rows = _rows(results)
    host = timing.host_info(started)
    how = _how(args)
    tables = [
        {"title": f"Training step (forward, cross-entropy, backward, SGD momentum; images/s, "
                  f"{args.threads} threads; {how})",
         "columns": ["model", "batch", "tinycnn", "torch NCHW", "vs NCHW", "torch CL", "vs CL"],
         "rows": train_rows},
        {"title": f"Inference (eval, no_grad; batch {args.infer_batch}; images/s; {how})",
         "columns": ["model", "tinycnn (fused)", "tinycnn unfused", "fused vs unfused", "torch NCHW",
                     "vs NCHW", "torch CL", "vs CL"],
         "rows": infer_rows},
    ]
    if memory_rows:
        tables.append({"title": f"Peak resident memory, training at batch {args.memory_batch} (MB, "
                                "fresh process per contender, two steps)",
                       "columns": ["model", "tinycnn", "torch NCHW", "tinycnn / torch", "torch CL"],
                       "rows": memory_rows})
    return {
        "machine_line": timing.comparison_line(host, seen, args.in_process, args.rounds),
        "machine": {**host, "processes": seen, "user_set_env": procs.USER_SET},
        "suite": "models",
        "title": "tinycnn model benchmark" + (" (IN-PROCESS)" if args.in_process else ""),
        "command": args.command_line,
        "settings": {"models": names, "train_batch": args.train_batch, "infer_batch": args.infer_batch,
                     "memory_batch": None if args.no_memory else args.memory_batch, "repeats": args.repeats,
                     "warmup_calls": WARMUP_CALLS, "rounds": args.rounds, "in_process": args.in_process,
                     "import_order": args.import_order, "threads": args.threads, "torch": args.torch,
                     "input": [HW, HW, 3], "dtype": "float32", "num_classes": NUM_CLASSES,
                     "elapsed_s": round(time.perf_counter() - t0, 1)},
        "notes": _notes(args),
        "results": results,
        "tables": tables,
    }
