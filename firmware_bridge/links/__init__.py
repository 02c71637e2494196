"""Links to vehicles: cflib for Crazyflies, pymavlink for PX4. The URI picks the library."""

from __future__ import annotations

from firmware_bridge.links.base import Link, LinkError, Telemetry, TelemetryBuffer

CFLIB_SCHEMES = ("radio://", "usb://", "udp://")
MAVLINK_SCHEMES = ("udpin:", "udpout:", "tcp:", "serial:")


def link_kind(uri: str) -> str:
    """'cflib' or 'mavlink' for a link URI; LinkError for anything else."""
    if uri.startswith(CFLIB_SCHEMES):
        return "cflib"
    if uri.startswith(MAVLINK_SCHEMES):
        return "mavlink"
    raise LinkError(
        f"unknown link {uri!r}: use radio://, usb:// or udp://host:port (Crazyflie, cflib) or "
        "udpin:HOST:PORT, udpout:HOST:PORT, tcp:HOST:PORT, serial:/dev/DEVICE:BAUD (PX4, pymavlink)"
    )


def make_link(uri: str) -> Link:
    """The link object for ``uri`` (not yet connected)."""
    if link_kind(uri) == "cflib":
        from firmware_bridge.links.crazyflie import CrazyflieLink

        return CrazyflieLink(uri)
    from firmware_bridge.links.mavlink import MavlinkLink

    return MavlinkLink(uri)


__all__ = ["Link", "LinkError", "Telemetry", "TelemetryBuffer", "link_kind", "make_link"]
