"""Start-up: from ``import tinycnn`` to the end of the first training step.

Each sample is a fresh Python process that starts its clock, imports tinycnn,
builds the model, and runs one training step (forward, cross-entropy,
backward, SGD with momentum) on a fixed batch.  *Cold*: ``NUMBA_CACHE_DIR`` is
a new, empty temporary folder, so every kernel the step uses is compiled.
*Warm*: a folder filled by one untimed run first, so the kernels load from
Numba's cache.  Cold and warm runs alternate.  The interpreter's own start
(before the clock) is not counted.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

from . import procs, timing

DEFAULT_REPEATS = (5, 2)   # warm runs (default, --quick)
# name -> (label, create_model name, kwargs); the default is `tinycnn train`'s model.
STARTUP_MODELS = {
    "resnet20-se": ("CIFAR ResNet-20 with SE (reduction 4), the `tinycnn train` default", "resnet20",
                    {"se": True, "se_reduction": 4}),
    "resnet18": ("ResNet-18 (cifar stem)", "resnet18", {"stem": "cifar"}),
}
DEFAULT_COLD_RUNS = 2
WARM_TARGET_S = 3.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CHILD = """
import time
t0 = time.perf_counter()
import tinycnn
from tinycnn import functional as F
from tinycnn.models import create_model
from tinycnn.optim import SGD
t_import = time.perf_counter()
import numpy as np
tinycnn.set_num_threads({threads})
tinycnn.manual_seed(0)
model = create_model({model!r}, num_classes=10, **{kwargs!r})
opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
rng = np.random.default_rng(0)
x = tinycnn.Tensor(rng.standard_normal(({batch}, 32, 32, 3), dtype=np.float32))
y = rng.integers(0, 10, {batch})
t_model = time.perf_counter()
loss = F.cross_entropy(model(x), y)
loss.backward()
opt.step()
t_end = time.perf_counter()
loss = F.cross_entropy(model(x), y)
loss.backward()
opt.step()
t_second = time.perf_counter()
import json
print(json.dumps({{"total_s": t_end - t0, "import_s": t_import - t0, "model_s": t_model - t_import,
                  "step_s": t_end - t_model, "second_step_s": t_second - t_end}}))
"""


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def one_run(args, cache_dir):
    """One fresh process with ``NUMBA_CACHE_DIR=cache_dir``; its timings (seconds)."""
    _, factory, kwargs = STARTUP_MODELS[args.model]
    code = _CHILD.format(threads=args.threads, model=factory, kwargs=kwargs, batch=args.batch)
    env = dict(procs.child_env(), NUMBA_CACHE_DIR=cache_dir)  # the user's environment, not tinycnn's defaults
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir())  # not the checkout: import the installed tinycnn
    if done.returncode != 0:
        raise RuntimeError(f"start-up child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(runs):
    return {key: timing.median([r[key] for r in runs]) for key in runs[0]} if runs else None


def add_arguments(parser):
    from .cli import positive_int

    parser.add_argument("--model", choices=sorted(STARTUP_MODELS), default="resnet20-se",
                        help="the model of the first training step (default resnet20-se, `tinycnn "
                             "train`'s model; resnet18 is ResNet-18 with the cifar stem)")
    parser.add_argument("--batch", type=positive_int, default=32, help="batch size (default 32)")
    parser.add_argument("--warm-cache-dir", metavar="PATH", default=None,
                        help="Numba cache folder of the warm runs (default: a new temporary folder, filled by "
                             "one untimed run and deleted afterwards; a given folder is kept)")
    parser.add_argument("--cold-runs", type=int, default=None,
                        help=f"runs with an empty Numba cache (default {DEFAULT_COLD_RUNS}, 1 with "
                             "--quick; 0 skips them: each compiles every kernel)")


def run(args):
    """Run the start-up benchmark; return the report dict (see ``bench.report``)."""
    started = datetime.datetime.now()
    cold_runs = args.cold_runs if args.cold_runs is not None else (1 if args.quick else DEFAULT_COLD_RUNS)
    warm_dir = args.warm_cache_dir or tempfile.mkdtemp(prefix="tinycnn-startup-warm-")
    cold, warm = [], []
    try:
        _log("warming a Numba cache (untimed)...")
        one_run(args, warm_dir)
        for i in range(max(cold_runs, args.repeats)):
            if i < cold_runs:
                cold_dir = tempfile.mkdtemp(prefix="tinycnn-startup-cold-")
                try:
                    cold.append(one_run(args, cold_dir))
                finally:
                    shutil.rmtree(cold_dir, ignore_errors=True)
                _log(f"  cold {len(cold)}: {cold[-1]['total_s']:.2f} s")
            if i < args.repeats:
                warm.append(one_run(args, warm_dir))
                _log(f"  warm {len(warm)}: {warm[-1]['total_s']:.2f} s")
    finally:
        if not args.warm_cache_dir:
            shutil.rmtree(warm_dir, ignore_errors=True)
    summary = {"cold": _summary(cold), "warm": _summary(warm)}
    rows = []
    for name, s, n in (("cold (empty Numba cache)", summary["cold"], len(cold)),
                       ("warm (Numba cache filled)", summary["warm"], len(warm))):
        if s:
            rows.append([name, n, f"{s['total_s']:.2f}", f"{s['import_s']:.2f}", f"{s['model_s']:.2f}",
                         f"{s['step_s']:.2f}", f"{s['second_step_s']:.2f}"])
    warm_total = summary["warm"]["total_s"]
    info = timing.machine_info(args.threads, None, started, env=timing.threading_env(procs.child_env()))
    label = STARTUP_MODELS[args.model][0]
    return {
        "machine_line": timing.machine_line(info),
        "machine": info,
        "suite": "startup",
        "title": "tinycnn start-up benchmark",
        "command": args.command_line,
        "settings": {"model": args.model, "batch": args.batch, "threads": args.threads,
                     "cold_runs": len(cold), "warm_runs": len(warm)},
        "notes": [
            f"Time from `import tinycnn` to the end of the first training step of {label}, batch "
            f"{args.batch}, in a fresh process (medians; cold and warm runs alternate).",
            "cold: NUMBA_CACHE_DIR is a new empty folder (every kernel compiles); warm: a folder filled by "
            "one untimed run.  'second step' (not part of the total) is the steady-state cost of a step: "
            "first step - second step is the one-off start-up work inside the step (cache loading, "
            "first-touch allocation).",
            f"Target: warm < {WARM_TARGET_S:.0f} s — {'met' if warm_total < WARM_TARGET_S else 'missed'} "
            f"({warm_total:.2f} s).",
        ],
        "cold": cold, "warm": warm, "summary": summary,
        "tables": [{"title": "Start-up (seconds, medians)",
                    "columns": ["cache", "runs", "import → first step done", "import", "model + data",
                                "first step", "second step"],
                    "rows": rows}],
    }
