"""Suite-wide collection rules.

`make test` runs the suite on several pytest-xdist workers (`--dist loadgroup`): most of its wall
time is twins and bridges flying in real time, which sleeps, so flights run side by side. The
tests that keep the cores busy (TensorFlow training, conversion and evaluation under tests/train
and tests/deploy) share one xdist group, so that at most one of them runs at a time and the
real-time flights beside it keep their deadlines on a 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CPU_BOUND_DIRS = ("train", "deploy")


def pytest_collection_modifyitems(config, items):
    """Put every test under tests/train and tests/deploy in the "cpu" xdist group."""
    tests_dir = Path(__file__).parent
    for item in items:
        parts = Path(str(item.fspath)).relative_to(tests_dir).parts
        if parts and parts[0] in CPU_BOUND_DIRS:
            item.add_marker(pytest.mark.xdist_group("cpu"))
