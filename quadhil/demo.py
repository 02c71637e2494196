"""``quadhil demo``: train, export, start a twin, fly, plot, summarize (the demo issue owns it)."""

from __future__ import annotations

import argparse

from sim.errors import NotAvailable


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil demo``."""
    parser.add_argument("--vehicle", default="crazyflie", choices=["crazyflie", "x500"])


def run(args: argparse.Namespace) -> int:
    """Not yet available."""
    raise NotAvailable("'quadhil demo' is not available yet in this build")
