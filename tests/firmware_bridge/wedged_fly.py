"""``quadhil fly`` in a process of its own whose client library wedges mid-flight, for the stall
tests.

``python -m tests.firmware_bridge.wedged_fly WEDGE fly ARGS...`` runs ``quadhil fly ARGS`` (the
CLI's own ``main``, so its real exit path) with the client library patched (each wedged call blocks
for at most WEDGE_MAX_S):

* ``cflib:SECONDS``: SECONDS after the first packet, every send of cflib's
  ``Crazyflie.send_packet`` blocks, as when cflib's link-error deadlock held its send lock (cflib
  0.1.34, firmware_bridge.links.crazyflie.bound_ping_thread_stop);
* ``mavlink-land``: pymavlink's ``set_mode("LAND")`` blocks: the bridge wedges while it hands a PX4
  vehicle to its own landing.

The bridge's thread then hangs in the library and never unwinds: only the loop watchdog's
``os._exit`` can end the process.
"""

from __future__ import annotations

import sys
import threading
import time

WEDGE_MAX_S = 120.0  # a wedge, not a hang of the test run: the test's own timeout is shorter


def wedge_cflib_after(seconds: float) -> None:
    """Patch cflib so that every send from ``seconds`` after the first one on blocks."""
    from cflib.crazyflie import Crazyflie

    real_send = Crazyflie.send_packet
    first: list[float] = []
    never = threading.Event()

    def send_packet(self, pk, *args, **kwargs):
        now = time.monotonic()
        if not first:
            first.append(now)
        if now - first[0] >= seconds:
            never.wait(WEDGE_MAX_S)
        return real_send(self, pk, *args, **kwargs)

    Crazyflie.send_packet = send_packet


def wedge_mavlink_land() -> None:
    """Patch pymavlink so that asking for LAND mode blocks."""
    from pymavlink import mavutil

    real_set_mode = mavutil.mavfile.set_mode
    never = threading.Event()

    def set_mode(self, mode, *args, **kwargs):
        if mode == "LAND":
            never.wait(WEDGE_MAX_S)
        return real_set_mode(self, mode, *args, **kwargs)

    mavutil.mavfile.set_mode = set_mode


def main(argv: list[str]) -> int:
    """``WEDGE`` (``cflib:SECONDS`` or ``mavlink-land``) then the ``quadhil`` command line."""
    if argv[0].startswith("cflib:"):
        wedge_cflib_after(float(argv[0].split(":", 1)[1]))
    elif argv[0] == "mavlink-land":
        wedge_mavlink_land()
    else:
        raise SystemExit(f"unknown wedge {argv[0]!r}: cflib:SECONDS or mavlink-land")
    from quadhil.cli import main as quadhil_main

    return quadhil_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
