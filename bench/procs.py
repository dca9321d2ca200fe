"""Fresh processes for benchmark contenders, each engine with its own defaults.

``import tinycnn`` sets ``OMP_WAIT_POLICY=PASSIVE`` and ``OPENBLAS_THREAD_TIMEOUT=4``
(``tinycnn/_env.py``) unless the user set them.  PyTorch's OpenMP runtime reads
the first one too (PyTorch alone with PASSIVE trains ResNet-18 5-8% slower),
and in one process either engine's waiting threads take the other's cores.
PyTorch users run PyTorch without tinycnn, so each contender runs in its own
process (``python -m bench.child SPEC``) whose environment is the user's:

- ``USER_SET`` records, when ``bench`` is first imported, which of tinycnn's
  variables the user had set.  If tinycnn was imported before ``bench`` (as
  under ``tinycnn bench``), ``os.environ`` already holds tinycnn's defaults,
  so the values come from the environment the process started with
  (``/proc/self/environ``).
- ``child_env`` is ``os.environ`` with tinycnn's variables put back as the
  user had them: removed unless the user set them.
- ``rotation`` orders a round's processes: round 1 runs them as listed, each
  later round starts one further along, so none always runs first.
- ``summarize`` gives the median over rounds of each process's own median,
  with the min and max over rounds.

This module imports only the standard library: ``bench/__init__.py`` imports
it first, before anything can load tinycnn.
"""

import json
import os
import statistics
import subprocess
import sys

# The variables tinycnn/_env.py sets at import, and the values it gives them.
TINYCNN_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
IMPORT_ORDERS = ("numpy-first", "tinycnn-first")
DEFAULT_ROUNDS = 3
RESULT_MARKER = "BENCH-CHILD-RESULT "  # the child's JSON line starts with this
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def startup_environ():
    """The environment this process was started with (Linux ``/proc/self/environ``:
    later changes to ``os.environ`` do not show there), or None where unreadable."""
    try:
        with open("/proc/self/environ", "rb") as f:
            data = f.read()
    except OSError:
        return None
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[os.fsdecode(key)] = os.fsdecode(value)
    return env


def user_set(environ=None, modules=None, read_startup=startup_environ):
    """``{name: value}`` of tinycnn's variables that the user set.

    ``environ``/``modules`` default to ``os.environ``/``sys.modules``.  If tinycnn
    was imported already, the values come from ``read_startup()`` (the start-up
    environment); where that is unreadable (None), a value equal to tinycnn's
    default is taken to be tinycnn's."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    current = {k: environ[k] for k in TINYCNN_DEFAULTS if k in environ}
    if "tinycnn._env" not in modules:
        return current
    startup = read_startup()
    if startup is None:
        return {k: v for k, v in current.items() if v != TINYCNN_DEFAULTS[k]}
    return {k: startup[k] for k in TINYCNN_DEFAULTS if k in startup}


USER_SET = user_set()  # taken once, when bench is first imported
TINYCNN_FIRST = "tinycnn._env" in sys.modules  # imported before bench, as by `tinycnn bench`


def child_env(environ=None, user=None):
    """The environment of a contender's process: ``environ`` (default ``os.environ``)
    with tinycnn's variables as the user set them (``user``, default ``USER_SET``),
    and removed where the user did not set them."""
    env = dict(os.environ if environ is None else environ)
    user = USER_SET if user is None else user
    for key in TINYCNN_DEFAULTS:
        if key in user:
            env[key] = user[key]
        else:
            env.pop(key, None)
    return env


def thread_limit(environ=None):
    """The most threads a contender may use: ``NUMBA_NUM_THREADS`` if set, else the
    cores this process may run on (Numba's own default), without importing Numba."""
    environ = os.environ if environ is None else environ
    if environ.get("NUMBA_NUM_THREADS", "").strip().isdigit():
        return max(1, int(environ["NUMBA_NUM_THREADS"]))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ChildError(RuntimeError):
    """A contender's process failed."""


def run_child(spec, env=None):
    """Run ``python -m bench.child`` on ``spec`` (a JSON-able dict) from the checkout,
    with ``env`` (default :func:`child_env`); return the dict it printed."""
    done = subprocess.run([sys.executable, "-m", "bench.child", json.dumps(spec)], cwd=ROOT,
                          env=child_env() if env is None else env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not lines:
        raise ChildError(f"benchmark process {spec.get('engine')} {spec.get('suite')} failed "
                         f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_MARKER):])


def run_rounds(processes, rounds, measure_one):
    """Run ``measure_one(name, round_index)`` for each of ``processes`` (names, in
    round 1's order) in ``rounds`` rotated rounds; return ``{name: [result per round]}``."""
    results = {name: [] for name in processes}
    for r in range(rounds):
        for name in rotation(processes, r):
            results[name].append(measure_one(name, r))
    return results


def import_in_process(threads, with_torch):
    """``--in-process``: import tinycnn and, if wanted, PyTorch into this process and
    set their threads; return the threading variables the user had given (what
    each engine started from) and the import order this process had: NumPy is
    loaded already, unless tinycnn came first (``tinycnn bench``)."""
    from .child import import_engine
    from .timing import threading_env

    given = threading_env(child_env())
    import_engine("tinycnn", threads)
    if with_torch:
        import_engine("torch", threads)
    return given, "tinycnn-first" if TINYCNN_FIRST else "numpy-first"


def rotation(names, round_index):
    """The order of round ``round_index`` (0-based): ``names`` rotated left by it."""
    names = list(names)
    if not names:
        return names
    k = round_index % len(names)
    return names[k:] + names[:k]


def summarize(values):
    """Median, min and max of ``values`` (one per round), and the values themselves."""
    values = list(values)
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "rounds": values}


def add_arguments(parser):
    """The options of the suites that compare engines (models, kernels)."""
    from .cli import positive_int

    parser.add_argument("--rounds", type=positive_int, default=DEFAULT_ROUNDS,
                        help=f"rounds (default {DEFAULT_ROUNDS}): each round runs every contender once, in its "
                             "own fresh process, in an order rotated by one each round; the report gives the "
                             "median over rounds of each process's median, and the min-max over rounds")
    parser.add_argument("--import-order", choices=IMPORT_ORDERS, default="numpy-first",
                        help="how the tinycnn process imports: `import numpy` then `import tinycnn` (default, "
                             "as scripts do) or tinycnn first")
    parser.add_argument("--in-process", action="store_true",
                        help="time every engine in this one process instead, interleaved: PyTorch then runs "
                             "with tinycnn's OMP_WAIT_POLICY and beside tinycnn's threads, which is not how "
                             "users run it; the report says so")
