"""The bridge's Crazyflie link knows when the vehicle is gone and never hangs on it, through the real
cflib against the twin: when cflib reports the loss, when it drops its link without reporting it
(cflib 0.1.34's ping thread, firmware_bridge.links.crazyflie.CrazyflieLink.alive), and when a send
fails under cflib's send lock, which deadlocked cflib 0.1.34 (bound_ping_thread_stop).

Every wait here is bounded: the code under test runs in daemon threads joined with a timeout, so a
regression fails the test instead of hanging the suite."""

from __future__ import annotations

import threading
import time

import pytest

from firmware_bridge.links import crazyflie as cf_link
from firmware_bridge.links.crazyflie import CrazyflieLink
from tests.sitl.conftest import start_crazyflie_twin

PING_PERIOD_S = 0.1  # cflib link_statistics.Latency._ping_thread's interval


def _wait_lost(link: CrazyflieLink, timeout_s: float) -> None:
    t0 = time.monotonic()
    while link.alive and time.monotonic() - t0 < timeout_s:
        time.sleep(0.02)


def _returns_within(fn, timeout_s: float) -> bool:
    """Run ``fn`` in a daemon thread; True when it returned within ``timeout_s``."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(timeout_s)
    return not t.is_alive()


@pytest.fixture
def connected_link():
    with start_crazyflie_twin(0) as twin:
        link = CrazyflieLink(twin.uri)
        try:
            link.connect(10.0)
            assert link.alive
            yield twin, link
        finally:
            _returns_within(link.close, cf_link.CLOSE_TIMEOUT_S + 2.0)


def test_killing_the_twin_is_seen_as_a_lost_link_and_close_returns(connected_link):
    twin, link = connected_link
    twin.terminate()
    twin.wait(timeout=10)
    _wait_lost(link, 3.0)
    assert not link.alive and link.lost_reason
    assert _returns_within(link.close, cf_link.CLOSE_TIMEOUT_S + 1.0)


def test_a_send_error_under_the_send_lock_is_reported_lost_and_does_not_wedge_the_sender(connected_link):
    """cflib's own path, step by step: ``Crazyflie.send_packet`` holds ``_send_lock`` around the
    driver's ``send_packet``; the udp driver calls the link-error callback from inside it when the
    socket fails. The ping thread is kept waiting for the lock first, which is what deadlocked
    cflib 0.1.34 (its disconnected callback joined the ping thread with no timeout)."""
    from cflib.crtp.crtpstack import CRTPPacket

    _twin, link = connected_link
    cf = link._cf

    def send_that_fails() -> None:
        with cf._send_lock:
            time.sleep(3 * PING_PERIOD_S)  # the ping thread now waits for the lock
            cf.link.socket.close()
            cf.link.send_packet(CRTPPacket(0xFF, b""))  # OSError inside -> _link_error_cb, under the lock

    assert _returns_within(send_that_fails, 3.0), "the sending thread is stuck in cflib's link-error path"
    assert not link.alive
    assert "connection lost" in link.lost_reason
    assert _returns_within(link.close, cf_link.CLOSE_TIMEOUT_S + 1.0)


def test_close_returns_when_cflib_is_wedged(connected_link, monkeypatch):
    """Defence in depth: whatever holds cflib's send lock, the bridge's close gives up after
    CLOSE_TIMEOUT_S and leaves cflib's threads (daemons) behind."""
    monkeypatch.setattr(cf_link, "CLOSE_TIMEOUT_S", 0.3)
    _twin, link = connected_link
    cf = link._cf
    cf._send_lock.acquire()  # close_link's first act is a setpoint, which needs this lock
    try:
        assert _returns_within(link.close, 2.0)
    finally:
        cf._send_lock.release()


def test_a_link_cflib_dropped_without_reporting_it_counts_as_lost(connected_link):
    """What cflib's ``Crazyflie._link_error_cb`` leaves when it raises before ``connection_lost``
    (its first lines: close the driver, ``link = None``), done on the real connected object."""
    _twin, link = connected_link
    cf = link._cf
    cf.link.close()
    cf.link = None
    assert not link.alive
    assert "dropped the link" in link.lost_reason
