"""``quadhil fly`` in a process of its own whose cflib wedges mid-flight, for the stall tests.

``python -m tests.firmware_bridge.wedged_fly SECONDS fly ARGS...`` runs ``quadhil ARGS`` (the CLI's
own ``main``, so its real exit path) with cflib's ``Crazyflie.send_packet`` patched: SECONDS after
the first packet, every later send blocks (at most WEDGE_MAX_S), as when cflib's link-error
deadlock held its send lock (cflib 0.1.34, firmware_bridge.links.crazyflie.bound_ping_thread_stop).
The control loop then hangs inside ``send_packet`` and never unwinds: only the loop watchdog's
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


def main(argv: list[str]) -> int:
    """``SECONDS`` then the ``quadhil`` command line."""
    wedge_cflib_after(float(argv[0]))
    from quadhil.cli import main as quadhil_main

    return quadhil_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
