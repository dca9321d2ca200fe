"""Thread-waiting defaults, set before NumPy, Numba or OpenMP start their threads.

Imported first by ``tinycnn/__init__.py``; a value set by the user always
wins.  Both libraries read these when they load.  Numba loads its OpenMP
runtime at its first parallel kernel, after this module in any import order.
OpenBLAS loads with NumPy, usually before tinycnn: ``threads.py`` then makes
it read its settings again (``apply_blas_thread_timeout``), so the timeout
holds whichever is imported first.

- ``OMP_WAIT_POLICY=PASSIVE``: Numba's OpenMP workers spin while they wait for
  work.  When the machine has more runnable threads than cores, the spinning
  starves the thread doing the work and a small kernel call takes milliseconds
  instead of microseconds (the op-table tests ran 10x slower).  Passive waiting
  costs a few microseconds per parallel region.
- ``OPENBLAS_THREAD_TIMEOUT=4``: after a multi-threaded matrix product,
  OpenBLAS's workers spin for about 2**28 cycles (~0.1 s) before they sleep.
  The Winograd convolutions run one chunk per core on their own threads with
  BLAS at one thread, and spinning BLAS workers take those cores: measured on
  the 2-core EPYC, a 3x3 64@32x32 forward + both gradients took 50 ms right
  after a threaded GEMM against 30 ms without, and ResNet-18 training at batch
  128 ran at 48-52 img/s with the default against 60 img/s with a timeout of
  2**4 cycles (separate processes run alternately).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
