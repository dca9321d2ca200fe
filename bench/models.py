"""Whole models: training-step and inference images/s, and peak resident memory.

Models: ResNet-18 and ResNet-34 (cifar stem), SE-ResNet-18 (cifar stem) and
``xception_small``, 10 classes, 32x32x3 float32 input.  A training step is
forward, cross-entropy, backward and an SGD step with momentum 0.9.
Inference is eval mode under ``no_grad`` (tinycnn: BatchNorm folded into the
convolutions, bias + ReLU fused; also timed unfused).  PyTorch runs the same
networks (``bench.torch_models``) in its default NCHW layout and in
channels_last, timed interleaved with tinycnn in the same process.  Peak
resident memory is measured in a fresh subprocess per model and framework
(VmHWM after two training steps).
"""

import datetime
import json
import os
import subprocess
import sys

import numpy as np

from . import timing

# name -> (label, create_model name, kwargs)
MODELS = {
    "resnet18": ("ResNet-18 (cifar stem)", "resnet18", {"stem": "cifar"}),
    "resnet34": ("ResNet-34 (cifar stem)", "resnet34", {"stem": "cifar"}),
    "se_resnet18": ("SE-ResNet-18 (cifar stem)", "se_resnet18", {"stem": "cifar"}),
    "xception_small": ("Xception (small)", "xception_small", {}),
}
NUM_CLASSES, HW = 10, 32
DEFAULT_REPEATS = (5, 3)  # (default, --quick): a training step takes seconds
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


# --------------------------------------------------------------- peak memory

_MEMORY_CHILD = """
import json, sys
sys.path.insert(0, {root!r})
framework, name, N, threads = {framework!r}, {name!r}, {N}, {threads}
from bench import models as B
if framework == "tinycnn":
    import tinycnn
    tinycnn.set_num_threads(threads)
    step = B.tinycnn_train_step(B.tinycnn_model(name), N)
else:
    import torch
    torch.set_num_threads(threads)
    cl = framework == "torch_channels_last"
    step = B.torch_train_step(torch, B.torch_model(torch, name, cl), N, cl)
before = B.vm_hwm_mb()
step()
step()
print(json.dumps({{"peak_mb": B.vm_hwm_mb(), "before_step_mb": before}}))
"""


def vm_hwm_mb():
    """This process's peak resident set (VmHWM, MB).  Not ``ru_maxrss``: Linux carries
    that over from the parent across fork + exec, so a child would report the
    benchmark process's own size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_memory(framework, name, N, threads):
    """Peak RSS (MB) of a fresh process that builds the model and runs two training steps."""
    code = _MEMORY_CHILD.format(root=ROOT, framework=framework, name=name, N=N, threads=threads)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"peak-memory child ({framework}, {name}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------- run


def _measure(contenders, N, repeats):
    samples = timing.time_interleaved(
        {who: timing.Contender(fn, repeats, warmup=2) for who, fn in contenders.items()})
    out = {}
    for who, s in samples.items():
        t = timing.median(s)
        out[who] = {"median_s": t, "images_per_s": N / t, "samples_s": s}
    return out


def measure_model(name, args, torch):
    """Training at each batch size, inference, peak memory: one result dict."""
    result = {"model": name, "label": MODELS[name][0], "train": {}, "infer": None, "memory": {}}
    model = tinycnn_model(name)
    tmodels = {}
    if torch is not None:
        tmodels = {"torch_nchw": torch_model(torch, name, False),
                   "torch_channels_last": torch_model(torch, name, True)}
    for N in args.train_batch:
        _log(f"  train, batch {N}")
        contenders = {"tinycnn": tinycnn_train_step(model, N)}
        for who, tm in tmodels.items():
            contenders[who] = torch_train_step(torch, tm, N, who == "torch_channels_last")
        result["train"][N] = _measure(contenders, N, args.repeats)
    N = args.infer_batch
    _log(f"  inference, batch {N}")
    contenders = {"tinycnn": tinycnn_infer(model, N), "tinycnn_unfused": tinycnn_infer(model, N, fused=False)}
    for who, tm in tmodels.items():
        contenders[who] = torch_infer(torch, tm, N, who == "torch_channels_last")
    result["infer"] = _measure(contenders, N, args.repeats)
    if not args.no_memory:
        for who in ["tinycnn", *tmodels]:
            _log(f"  peak memory, {who}, batch {args.memory_batch}")
            result["memory"][who] = peak_memory(who, name, args.memory_batch, args.threads)
    return result


def _f(value, fmt):
    return "—" if value is None else format(value, fmt)


def _ratio(results, who):
    if who not in results:
        return None, None
    return results[who]["images_per_s"], results["tinycnn"]["images_per_s"] / results[who]["images_per_s"]


def _rows(results):
    train_rows, infer_rows, memory_rows = [], [], []
    for r in results:
        for N, res in r["train"].items():
            nchw, vs_nchw = _ratio(res, "torch_nchw")
            cl, vs_cl = _ratio(res, "torch_channels_last")
            train_rows.append([r["label"], N, _f(res["tinycnn"]["images_per_s"], ".1f"),
                               _f(nchw, ".1f"), _f(vs_nchw, ".2f"), _f(cl, ".1f"), _f(vs_cl, ".2f")])
        res = r["infer"]
        nchw, vs_nchw = _ratio(res, "torch_nchw")
        cl, vs_cl = _ratio(res, "torch_channels_last")
        unfused, vs_unfused = _ratio(res, "tinycnn_unfused")
        infer_rows.append([r["label"], _f(res["tinycnn"]["images_per_s"], ".1f"), _f(unfused, ".1f"),
                           _f(vs_unfused, ".2f"), _f(nchw, ".1f"), _f(vs_nchw, ".2f"), _f(cl, ".1f"),
                           _f(vs_cl, ".2f")])
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

    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated models (default all: {','.join(MODELS)})")
    parser.add_argument("--train-batch", type=_batches, default=[32, 128],
                        help="training batch sizes, comma-separated (default 32,128)")
    parser.add_argument("--infer-batch", type=positive_int, default=128,
                        help="inference batch size (default 128)")
    parser.add_argument("--memory-batch", type=positive_int, default=128,
                        help="batch size of the peak-memory runs (default 128)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")


def run(args, torch):
    """Run the model benchmark; return the report dict (see ``bench.report``)."""
    started = datetime.datetime.now()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise SystemExit(f"--models: unknown {unknown}; known: {', '.join(MODELS)}")
    results = []
    for i, name in enumerate(names, 1):
        _log(f"[{i}/{len(names)}] {MODELS[name][0]}")
        results.append(measure_model(name, args, torch))
    train_rows, infer_rows, memory_rows = _rows(results)
    info = timing.machine_info(args.threads, torch, started)
    tables = [
        {"title": f"Training step (forward, cross-entropy, backward, SGD momentum; images/s, "
                  f"{args.threads} threads)",
         "columns": ["model", "batch", "tinycnn", "torch NCHW", "vs NCHW", "torch CL", "vs CL"],
         "rows": train_rows},
        {"title": f"Inference (eval, no_grad; batch {args.infer_batch}; images/s)",
         "columns": ["model", "tinycnn (fused)", "tinycnn unfused", "fused vs unfused", "torch NCHW",
                     "vs NCHW", "torch CL", "vs CL"],
         "rows": infer_rows},
    ]
    if memory_rows:
        tables.append({"title": f"Peak resident memory, training at batch {args.memory_batch} (MB, "
                                "fresh process, two steps)",
                       "columns": ["model", "tinycnn", "torch NCHW", "tinycnn / torch", "torch CL"],
                       "rows": memory_rows})
    return {
        "machine_line": timing.machine_line(info),
        "machine": info,
        "suite": "models",
        "title": "tinycnn model benchmark",
        "command": args.command_line,
        "settings": {"models": names, "train_batch": args.train_batch, "infer_batch": args.infer_batch,
                     "memory_batch": None if args.no_memory else args.memory_batch, "repeats": args.repeats,
                     "threads": args.threads, "torch": torch is not None, "input": [HW, HW, 3],
                     "dtype": "float32", "num_classes": NUM_CLASSES},
        "notes": [
            f"images/s = batch / median seconds of {args.repeats} interleaved samples per contender "
            "(tinycnn, torch NCHW, torch channels_last take turns, one call each per round), after two "
            "untimed warm-up calls.",
            "vs NCHW / vs CL = tinycnn images/s / torch images/s (> 1: tinycnn faster).",
            "Inference: tinycnn folds each BatchNorm into the convolution before it and fuses bias + ReLU "
            "(tinycnn.nn.fusion); 'unfused' runs the same model with fusion disabled.",
            "Peak memory: VmHWM (peak RSS) of a fresh process (imports, model, optimizer, two training steps).",
        ],
        "results": results,
        "tables": tables,
    }
