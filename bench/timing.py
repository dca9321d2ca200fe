"""Timing helpers and the machine line that heads every report.

Timings on a shared machine are noisy, so everything here reports medians and
the things being compared are timed *interleaved*: in each round every
contender runs once (A, B, C, A, B, C, ...), so a burst of load from another
process hits all of them alike instead of one.
"""

import datetime
import gc
import os
import platform
import statistics
import sys
import time

MIN_SAMPLE_SECONDS = 0.002  # a sample averages back-to-back calls until it lasts this long
SLOW_CALL_SECONDS = 1.0     # a warm-up call slower than this is kept as the first sample
# Environment variables that change how threads behave; recorded when set.
THREADING_ENV = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "NUMBA_NUM_THREADS",
                 "NUMBA_THREADING_LAYER", "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT",
                 "MKL_NUM_THREADS")


class Contender:
    """One thing to time: a no-argument callable, how many samples to take,
    and whether it needs a JIT/first-call warm-up (``warmup`` calls, not timed)."""

    def __init__(self, fn, repeats, warmup=1):
        self.fn = fn
        self.repeats = int(repeats)
        self.warmup = int(warmup)


def _clock(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def time_interleaved(contenders):
    """Time ``{name: Contender}`` in interleaved rounds; return ``{name: [seconds per call]}``.

    Warm-up: each contender is called ``warmup`` times (at least once); the last
    warm-up call sets how many back-to-back calls make one sample (enough for
    ``MIN_SAMPLE_SECONDS``), and a warm-up call slower than ``SLOW_CALL_SECONDS``
    counts as a sample (the NumPy reference needs no JIT and is too slow to run
    twice for nothing).  Then round after round, each contender that still needs
    samples runs once.  The garbage collector is off while timing.
    """
    samples = {name: [] for name in contenders}
    calls = {}
    for name, c in contenders.items():
        for _ in range(max(1, c.warmup)):
            t = _clock(c.fn, 1)
        calls[name] = max(1, int(MIN_SAMPLE_SECONDS / max(t, 1e-9)))
        if t > SLOW_CALL_SECONDS:
            samples[name].append(t)
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        rounds = max((c.repeats for c in contenders.values()), default=0)
        for _ in range(rounds):
            for name, c in contenders.items():
                if len(samples[name]) < c.repeats:
                    samples[name].append(_clock(c.fn, calls[name]))
    finally:
        if gc_was_on:
            gc.enable()
    return samples


def median(values):
    return statistics.median(values) if values else None


# ----------------------------------------------------------------- machine


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _blas():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: info.get(k) for k in ("internal_api", "version", "architecture",
                                       "threading_layer", "num_threads")}
            for info in threadpool_info() if info.get("user_api") == "blas"]


def threading_env(environ=None):
    """The ``THREADING_ENV`` variables set in ``environ`` (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in THREADING_ENV if k in environ}


def engine_info(engine, env_given, import_order=None):
    """What a contender's process ran with: versions, its thread count as the engine
    reports it, the threading variables it was given (``env_given``) and those set
    after its engine's import, and whether tinycnn and torch were imported.  Call it
    after the timing (Numba's threading layer is known once a kernel ran)."""
    import numpy

    info = {"engine": engine, "numpy": numpy.__version__, "import_order": import_order,
            "env_given": dict(env_given), "env_after_import": threading_env(),
            "tinycnn_imported": "tinycnn" in sys.modules, "torch_imported": "torch" in sys.modules}
    if engine == "tinycnn":
        import numba

        import tinycnn

        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel kernel ran
            layer = None
        info.update(numba=numba.__version__, numba_threading_layer=layer, blas=_blas(),
                    threads=tinycnn.get_num_threads())
    else:
        import torch

        info.update(torch=torch.__version__, threads=torch.get_num_threads(),
                    interop_threads=torch.get_num_interop_threads())
    return info


def host_info(started=None):
    """CPU, cores, Python, date and load: the part of the machine line no process owns."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    started = started or datetime.datetime.now()
    return {"cpu": _cpu_model(), "cores": _cpu_count(), "python": platform.python_version(),
            "platform": sys.platform, "date": started.isoformat(timespec="minutes"),
            "load_average_at_end": load}


def _env_text(env):
    return " ".join(f"{k}={v}" for k, v in env.items()) or "none"


def _process_text(p):
    """One contender's process, e.g. 'tinycnn: NumPy 2.4.6, Numba 0.68.1 (omp), ...'."""
    if p["engine"] == "tinycnn":
        blas = ", ".join(f"{b['internal_api']} {b['version']} {b['architecture']}" for b in p["blas"])
        layer = f" ({p['numba_threading_layer']})" if p["numba_threading_layer"] else ""
        order = {"numpy-first": "import numpy, then tinycnn",
                 "tinycnn-first": "import tinycnn, then numpy"}.get(p["import_order"], "")
        head = (f"tinycnn: NumPy {p['numpy']}, Numba {p['numba']}{layer}, BLAS {blas or 'unknown'}, "
                f"{p['threads']} threads (set_num_threads)" + (f", {order}" if order else ""))
    else:
        head = (f"torch {p['torch']}: NumPy {p['numpy']}, {p['threads']} threads (set_num_threads), "
                f"{p['interop_threads']} interop, "
                + ("tinycnn imported in the same process" if p["tinycnn_imported"] else "tinycnn not imported"))
    after = p["env_after_import"]
    env = f"env given: {_env_text(p['env_given'])}"
    if after != p["env_given"]:
        env += f", after import: {_env_text(after)}"
    return f"{head}, {env}"


def comparison_line(host, processes, in_process, rounds, unit="configuration"):
    """The machine line of a suite that compares engines: CPU, cores, how the
    contenders were run, and for each engine's process (``processes``: engine ->
    ``engine_info`` dict) its versions, threads, import order and environment."""
    how = (f"IN-PROCESS: every contender in one process, interleaved, {rounds} rounds" if in_process else
           f"each contender in a fresh process per {unit} and round, {rounds} rounds, order rotated")
    parts = [f"{host['cpu']}, {host['cores']} cores", f"Python {host['python']}", how]
    parts += [_process_text(p) for p in processes.values()]
    parts.append(host["date"])
    if host["load_average_at_end"]:
        parts.append(f"load avg {host['load_average_at_end'][0]:.1f} at end")
    return " | ".join(parts)


def machine_info(threads, torch_module=None, started=None, env=None):
    """A dict describing the machine and software; ``machine_line`` renders it.

    Call it after the benchmark ran: Numba's threading layer is only known once
    a parallel kernel has run.  ``started`` is the run's start time (default now).
    """
    import numba
    import numpy

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel ran yet
        layer = None
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    started = started or datetime.datetime.now()
    return {
        "cpu": _cpu_model(),
        "cores": _cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "numba_threading_layer": layer,
        "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "blas": _blas(),
        "torch": getattr(torch_module, "__version__", None),
        "threads": threads,
        "date": started.isoformat(timespec="minutes"),
        "load_average_at_end": load,
        "platform": sys.platform,
        "env": threading_env() if env is None else dict(env),
    }


def machine_line(info):
    """One line: CPU, cores, Python/NumPy/Numba/BLAS/torch versions, threads, date."""
    blas = ", ".join(f"{b['internal_api']} {b['version']} {b['architecture']}"
                     for b in info["blas"]) or "unknown"
    numba = f"Numba {info['numba']}"
    if info["numba_threading_layer"]:
        numba += f" ({info['numba_threading_layer']})"
    parts = [
        f"{info['cpu']}, {info['cores']} cores",
        f"Python {info['python']}",
        f"NumPy {info['numpy']}",
        numba,
        f"BLAS {blas}",
    ]
    if info["torch"]:
        parts.append(f"torch {info['torch']}")
    parts.append(f"{info['threads']} threads")
    parts += [f"{k}={v}" for k, v in info.get("env", {}).items()]
    parts.append(info["date"])
    if info["load_average_at_end"]:
        parts.append(f"load avg {info['load_average_at_end'][0]:.1f} at end")
    return " | ".join(parts)
