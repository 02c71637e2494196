"""Output helpers shared by every command that reports figures.

Commands that take ``--json`` print exactly one JSON object as the last line of stdout, so
figures can be compared across commits by machines; humans get a rich table above it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path
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


# A value that starts like a negative number and holds only number characters: "-1,0,1",
# "-1,1,-1,1,2", "-.5", "-1e-3,2,3". No option starts with a digit, so it cannot be a flag.
_NEGATIVE_NUMBERS = re.compile(r"^-\.?\d[\d.,eE+\- ]*$")


def join_negative_values(argv: list[str]) -> list[str]:
    """``--flag -1,0,1`` becomes ``--flag=-1,0,1`` so argparse takes negative numbers as values.

    argparse reads a token that starts with ``-`` as an option unless it matches its own
    negative-number pattern (a single number such as ``-1``, not ``-1,0,1``), so comma lists of
    numbers (coordinates, fences) would need ``=``. Only a ``--long-flag`` without ``=`` followed
    by such a token is joined; everything after ``--`` is left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            return out + argv[i:]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (tok.startswith("--") and len(tok) > 2 and "=" not in tok and nxt is not None
                and _NEGATIVE_NUMBERS.match(nxt)):
            out.append(f"{tok}={nxt}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that accepts negative number lists after a flag without ``=``
    (``--target -1,0,1``, ``--geofence -1,1,-1,1,2``); see :func:`join_negative_values`."""

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 - argparse's own
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(join_negative_values(args), namespace)


def git_commit(root: str | Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout at ``root`` (default: this quadhil source tree), dirty
    meaning its tracked files differ from the commit; (None, None) outside a checkout or without
    git. What exports and benchmarks record of the code that gave their figures."""
    root = Path(__file__).resolve().parent.parent if root is None else Path(root)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=5, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None
