"""Process settings for training on a small CPU: TensorFlow's thread pools and numpy's BLAS."""

from __future__ import annotations

import ctypes
import glob
import os


def configure_tensorflow(threads: int | None = None, blas_threads: int = 1) -> int:
    """Quiet logs and pin TF's thread pools: ``threads`` intra-op threads (default: the machine's
    cores), one inter-op thread; and numpy's OpenBLAS to ``blas_threads`` (0: leave it, see
    :func:`limit_blas_threads`; every caller evaluates policies with numpy). Call before building
    models: once TensorFlow has run an op its pools are fixed and this changes nothing. Returns
    the intra-op threads in effect."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if blas_threads > 0:
        limit_blas_threads(blas_threads)
    import tensorflow as tf

    n = threads or os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized in this process
        pass
    return tf.config.threading.get_intra_op_parallelism_threads() or n


# (setter, getter) symbol names of the OpenBLAS builds numpy wheels bundle, newest first
_OPENBLAS_SYMBOLS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
                     ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
                     ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
                     ("openblas_set_num_threads", "openblas_get_num_threads"))


def _numpy_openblas():
    """(set, get) of the OpenBLAS numpy's wheel bundles, or None (another BLAS, or none found)."""
    import numpy as np

    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)  # already loaded by numpy: the same library, not a second copy
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                return setter, getter
    return None


def limit_blas_threads(threads: int = 1) -> int | None:
    """Run numpy's bundled OpenBLAS on ``threads`` threads; returns the count it reports now (None:
    not an OpenBLAS wheel, nothing changed).

    Why: on a busy 2-core machine OpenBLAS's own threads made a (128, 26) x (26, 64) float32
    product ~90x slower (1.56 ms against 18 us on one thread, 2026-12-06, loadavg 4), which is the
    numpy actor of a 128-or-more-episode evaluation, and its spinning threads take the core the
    update runs on. The products here are all small; one thread is what they want."""
    found = _numpy_openblas()
    if found is None:
        return None
    setter, getter = found
    setter(int(threads))
    return int(getter())
