"""Numba kernels over plain ndarrays (installed as ``tinycnn.kernels``).

Knows nothing of Tensor or autograd.  Activations are channels-last
``(N, H, W, C)``; every kernel has a plain NumPy twin in ``reference``.
"""
