"""Output helpers shared by every command that reports figures.

Commands that take ``--json`` print exactly one JSON object as the last line of stdout, so
figures can be compared across commits by machines; humans get a rich table above it.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python numbers, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit_json(obj: dict) -> None:
    """Print ``obj`` as one JSON line on stdout (the last line a --json command prints)."""
    sys.stdout.flush()
    print(json.dumps(_clean(obj), sort_keys=True), flush=True)


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """A two-column table of figures for humans (on stdout, before any JSON line)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    Console().print(table)


def xyz_arg(text: str) -> tuple[float, float, float]:
    """argparse type for ``x,y,z``: three finite numbers (metres, or m/s, world ENU)."""
    import argparse
    import math

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y,z numbers, got {text!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected three finite comma-separated numbers x,y,z, got {text!r}")
    return values  # type: ignore[return-value]


def start_arg(text: str) -> tuple[float, float, float]:
    """argparse type for a start position ``x,y,z`` (m, ENU) on or above the ground (z >= 0)."""
    import argparse

    values = xyz_arg(text)
    if values[2] < 0:
        raise argparse.ArgumentTypeError("--start z must be >= 0 (the ground is z = 0)")
    return values
