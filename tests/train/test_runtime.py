"""train/runtime.py: process settings for training on a small CPU."""

from __future__ import annotations

import numpy as np
import pytest

from train.runtime import _numpy_openblas, limit_blas_threads


def test_numpy_openblas_runs_on_the_threads_asked_for():
    found = _numpy_openblas()
    if found is None:
        pytest.skip("numpy here is not built on a bundled OpenBLAS")
    _, get = found
    before = get()
    try:
        assert limit_blas_threads(1) == 1 == get()
        x = np.ones((256, 64), np.float32)
        assert float((x @ x.T)[0, 0]) == 64.0  # still computes
    finally:
        limit_blas_threads(before)
    assert get() == before
