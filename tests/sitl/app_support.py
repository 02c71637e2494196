"""Shared by the app-channel tests (relay and onboard policy): the app's STATUS packets a twin sent."""

from __future__ import annotations

from sim.sitl import app_channel as ac
from sim.sitl.crazyflie import crtp


def app_statuses(twin) -> list[ac.StatusPacket]:
    """Every STATUS packet in ``twin.outbox`` (CRTP port 13 channel 2), oldest first."""
    out = []
    for d in twin.outbox:
        pk = crtp.decode(d)
        if (pk.port, pk.channel) == (ac.APP_CHANNEL_PORT, ac.APP_CHANNEL_CHANNEL):
            out.append(ac.decode(pk.data))
    return out
