"""The bridge's Crazyflie link knows when the vehicle is gone, through the real cflib against the
twin, when cflib drops its link without reporting it (cflib 0.1.34's ping thread,
firmware_bridge.links.crazyflie.CrazyflieLink.alive). Killing the twin under an in-process link is
not tested here: cflib 0.1.34 can deadlock in close_link then (its incoming thread holds the send
lock while joining the ping thread), which hung a pytest worker; the bridge tests kill the twin
under a bridge subprocess with a timeout instead."""

from __future__ import annotations

from firmware_bridge.links.crazyflie import CrazyflieLink
from tests.sitl.conftest import start_crazyflie_twin


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
