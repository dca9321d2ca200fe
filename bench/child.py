"""``python -m bench.child SPEC``: one contender's benchmark process (see ``bench.procs``).

``SPEC`` is a JSON object: ``engine`` ("tinycnn" or "torch"), ``suite`` (the
module whose ``measure(spec)`` does the work: "models" or "kernels"),
``threads``, ``import_order`` (tinycnn only) and the suite's own fields.  The
engine is imported first, as a user's script would: NumPy then tinycnn
(``numpy-first``) or tinycnn then NumPy; a torch process never imports
tinycnn.  The thread count is set here, by the engine's own call, not through
environment variables.  The last line of stdout is ``RESULT_MARKER`` and the
result as JSON: the suite's measurements and ``process`` (what this process
ran with, ``bench.timing.engine_info``).
"""

import importlib
import json
import os
import sys

from .procs import RESULT_MARKER
from .timing import engine_info, threading_env


def import_engine(engine, threads, import_order="numpy-first"):
    """Import ``engine`` in the given order and give it ``threads`` threads."""
    if engine == "tinycnn":
        if import_order == "numpy-first":
            import numpy  # noqa: F401
            import tinycnn
        else:
            import tinycnn
            import numpy  # noqa: F401
        tinycnn.set_num_threads(threads)
    elif engine == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        raise ValueError(f"bench.child: engine must be 'tinycnn' or 'torch', got {engine!r}")


def main(argv):
    spec = json.loads(argv[0])
    given = threading_env(os.environ)  # before the engine's import can add to it
    numpy_preloaded = "numpy" in sys.modules  # nothing before the engine's import may load NumPy
    import_engine(spec["engine"], spec["threads"], spec.get("import_order", "numpy-first"))
    result = importlib.import_module(f"bench.{spec['suite']}").measure(spec)
    result["process"] = engine_info(spec["engine"], given, spec.get("import_order"))
    result["process"]["numpy_preloaded"] = numpy_preloaded
    if spec["engine"] == "torch" and result["process"]["tinycnn_imported"]:
        raise RuntimeError("bench.child: a torch process imported tinycnn")
    print(RESULT_MARKER + json.dumps(result, default=float), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
