"""Placeholder: this command is built by a later issue and says so clearly."""

from __future__ import annotations

import argparse

from sim.errors import NotAvailable


def configure(parser: argparse.ArgumentParser) -> None:
    """No arguments yet."""
    parser.add_argument("rest", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    """Not yet available."""
    raise NotAvailable("'sim/sitl/cli' is not available yet in this build")
