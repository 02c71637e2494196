"""The loop watchdog (firmware_bridge.loop_watchdog) reports a loop that stopped turning, once,
naming where its thread is stuck; a loop that keeps kicking it is left alone.
Every wait here is bounded."""

from __future__ import annotations

import threading
import time

import pytest

from firmware_bridge.flightlog import FlightLogWriter
from firmware_bridge.loop_watchdog import LoopStall, LoopWatchdog


def _stuck_in_a_lock(lock: threading.Lock) -> None:
    with lock:
        pass


def test_a_loop_that_stops_kicking_is_reported_once_with_where_it_is_stuck():
    stalls: list[LoopStall] = []
    fired = threading.Event()
    lock = threading.Lock()
    lock.acquire()

    def loop() -> None:
        with LoopWatchdog(0.2, lambda s: (stalls.append(s), fired.set())):
            _stuck_in_a_lock(lock)  # blocks until the test releases it
            time.sleep(0.5)  # no kicks after the stall either: still only one report

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        assert fired.wait(3.0), "no stall reported"
    finally:
        lock.release()
    t.join(3.0)
    assert len(stalls) == 1
    assert stalls[0].stalled_s > 0.2
    assert any("_stuck_in_a_lock" in frame for frame in stalls[0].where), stalls[0].where
    assert stalls[0].describe().startswith("control loop stalled for 0.")
    assert "_stuck_in_a_lock" in stalls[0].describe()


def _wait_for(stalls: list, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not stalls and time.monotonic() < deadline:
        time.sleep(0.01)


# The next tests run the watchdog on a fake clock: on a loaded machine (the CPU-bound half of make
# test runs at the lowest priority) a real-time kicking thread can be starved past any timeout.

def test_a_kicked_loop_is_never_reported():
    now = [0.0]
    stalls: list[LoopStall] = []
    with LoopWatchdog(1.0, stalls.append, clock=lambda: now[0]) as wd:
        for _ in range(30):
            now[0] += 0.9
            wd.kick()
            time.sleep(0.01)
    assert stalls == [] and wd.stall is None


def test_a_fake_clock_decides_the_stall():
    now = [0.0]
    stalls: list[LoopStall] = []
    with LoopWatchdog(1.0, stalls.append, clock=lambda: now[0]) as wd:
        now[0] = 0.9
        time.sleep(0.1)
        assert wd.stall is None
        now[0] = 1.2
        _wait_for(stalls)
    assert stalls and stalls[0].stalled_s == pytest.approx(1.2)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_a_timeout_that_is_not_positive_is_refused(bad):
    with pytest.raises(ValueError, match="stall timeout"):
        LoopWatchdog(bad, lambda s: None)


def test_the_log_does_not_wait_forever_for_a_writer_that_holds_it(tmp_path):
    """The stall report must not hang on a log the wedged thread holds."""
    log = FlightLogWriter(tmp_path / "f.jsonl", {"x": 1})
    log._lock.acquire()
    try:
        t0 = time.monotonic()
        assert log.write({"type": "stall"}, timeout_s=0.1) is False
        assert log.close(timeout_s=0.1) is False
        assert time.monotonic() - t0 < 2.0
    finally:
        log._lock.release()
    assert log.write({"type": "stall"}) is True
    log.close()
    assert log.write({"type": "late"}) is False


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_flights_refuse_a_bad_stall_timeout_before_reading_the_model_or_connecting(bad):
    from firmware_bridge.flight import Flight, FlyConfig
    from firmware_bridge.onboard_flight import OnboardConfig, fly_onboard

    with pytest.raises(ValueError, match="stall timeout"):
        Flight(FlyConfig(model="no-such.tflite", link="udp://127.0.0.1:1", stall_timeout_s=bad))
    with pytest.raises(ValueError, match="stall timeout"):
        fly_onboard(OnboardConfig(model="no-such.tflite", link="udp://127.0.0.1:1", stall_timeout_s=bad))


def test_quadhil_fly_refuses_a_stall_timeout_that_is_not_positive():
    import argparse

    from firmware_bridge import cli_fly

    parser = argparse.ArgumentParser()
    cli_fly.configure(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "m.tflite", "--link", "udp://127.0.0.1:1", "--stall-timeout", "0"])
