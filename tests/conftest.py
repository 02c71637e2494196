"""Suite-wide collection rules.

`make test` (tests/run_suite.sh) runs the suite as two pytest runs at once, so that nothing that
keeps the cores busy can starve a flight that has deadlines:

- ``-m realtime``: twins and bridges flying in real time (cflib and pymavlink links, failsafes on
  telemetry age), two at a time at normal priority; one that fails is flown once more (host-side
  stalls of a shared VM, tests/run_suite.sh says more). A flight is about half a core (twin
  ~35 %, bridge ~20 %, measured 2026-12-06).
- ``-m "not realtime"``: TensorFlow training, conversion, evaluation, compiling, physics and unit
  tests, two at a time at nice 19. The tests under tests/deploy that use its session fixtures
  (the exported fixture actor: converting is the slow part) share one xdist group, so those are
  built once, on one worker; the rest of tests/deploy (rotorpy flights, the PX4 parameter export)
  goes to whichever worker is free.

At equal priority a TensorFlow test beside two flights starved one into its stale-telemetry
failsafe on CI (110 ms old, limit 100 ms): the bridge was right, the test setup was not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# No hypothesis deadline and no too-slow health check: both are timed assertions, and the busy run's
# tests run at nice 19 beside the flights (an attitude round trip took 293 ms once, 0.7 ms on its
# rerun, and failed the suite).
settings.register_profile("quadhil", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("quadhil")

# Session fixtures of tests/deploy/conftest.py that are worth building once.
SHARED_DEPLOY_FIXTURES = frozenset({"run_dir", "exports", "policy_path", "keras_actor", "visited_obs"})

# Modules outside tests/sitl whose tests start twins, bridges or timed streams and fly in real time.
REALTIME_BRIDGE_MODULES = ("test_link_conventions.py", "test_mavlink_params.py", "test_live.py", "test_mocap.py")


def is_realtime(parts: tuple[str, ...]) -> bool:
    """True for a test module (path parts below tests/) that flies or serves in real time."""
    if not parts:
        return False
    if parts[0] == "sitl":
        return True
    return parts[0] == "firmware_bridge" and (parts[-1].startswith("test_fly_") or parts[-1] in REALTIME_BRIDGE_MODULES)


def pytest_configure(config):
    config.addinivalue_line("markers", "realtime: flies or serves in real time; make test runs these in their own pass")


def pytest_collection_modifyitems(config, items):
    """Mark real-time tests ``realtime``; put the tests/deploy tests that use its session fixtures
    in one xdist group."""
    tests_dir = Path(__file__).parent
    for item in items:
        parts = Path(str(item.fspath)).relative_to(tests_dir).parts
        if is_realtime(parts):
            item.add_marker(pytest.mark.realtime)
        elif parts and parts[0] == "deploy" and SHARED_DEPLOY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("deploy"))
