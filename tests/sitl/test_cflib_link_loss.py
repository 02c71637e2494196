"""The bridge's Crazyflie link knows when the vehicle is gone, through the real cflib against the
twin: when cflib reports it, and when cflib drops its link without reporting it (cflib 0.1.34's
ping thread, firmware_bridge.links.crazyflie.CrazyflieLink.alive)."""

from __future__ import annotations

import time

from firmware_bridge.links.crazyflie import CrazyflieLink
from tests.sitl.conftest import start_crazyflie_twin


def _wait_lost(link: CrazyflieLink, timeout_s: float) -> None:
    t0 = time.monotonic()
    while link.alive and time.monotonic() - t0 < timeout_s:
        time.sleep(0.02)


def test_killing_the_twin_is_seen_as_a_lost_link():
    with start_crazyflie_twin(0) as twin:
        link = CrazyflieLink(twin.uri)
        try:
            link.connect(10.0)
            assert link.alive
            twin.terminate()
            twin.wait(timeout=10)
            _wait_lost(link, 3.0)
            assert not link.alive and link.lost_reason
        finally:
            link.close()


def test_a_link_cflib_dropped_without_reporting_it_counts_as_lost():
    """What cflib's ``Crazyflie._link_error_cb`` leaves when it raises before ``connection_lost``
    (its first lines: close the driver, ``link = None``), done on the real connected object."""
    with start_crazyflie_twin(0) as twin:
        link = CrazyflieLink(twin.uri)
        try:
            link.connect(10.0)
            assert link.alive
            cf = link._cf
            cf.link.close()
            cf.link = None
            assert not link.alive
            assert "dropped the link" in link.lost_reason
        finally:
            link.close()
