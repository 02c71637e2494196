"""TensorFlow process settings for training on a small CPU."""

from __future__ import annotations

import os


def configure_tensorflow(threads: int | None = None) -> None:
    """Quiet logs and pin TF's thread pools to the machine's cores (call before building models)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    n = threads or os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialized in this process
        pass
