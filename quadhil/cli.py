"""The ``quadhil`` command line.

Each subcommand lives in the layer that owns it, as a module with ``configure(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so ``quadhil fly`` on
a companion computer never imports TensorFlow and ``quadhil --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sim.errors import QuadhilError
from sim.report import ArgumentParser  # takes --target -1,0,1 without '='

# command -> (module, one-line help, package that also runs it as ``python -m``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "sim": ("sim.cli", "fly the simulator with a reference command and print what happened", "sim"),
    "train": ("train.cli_train", "train a DDPG hover policy (Keras) in the simulator", "train"),
    "eval": ("train.cli_eval", "evaluate a trained policy in the simulator", "train"),
    "sweep": ("train.cli_sweep", "seeds and hyper-parameter sweeps of quadhil train on Ray Tune, local or on a cluster", "train"),
    "export": ("deploy.cli_export", "export a trained actor to .tflite (or C) with its contract inside", "deploy"),
    "inspect": ("deploy.cli_inspect", "print the contract and tensors embedded in a .tflite", "deploy"),
    "crosscheck": ("deploy.cli_crosscheck", "fly a .tflite in an independent simulator (rotorpy) with the project's throws", "deploy"),
    "sitl": ("sim.sitl.cli", "run a SITL twin: a Crazyflie over CRTP/UDP or a PX4 vehicle over MAVLink", "sim.sitl"),
    "fly": ("firmware_bridge.cli_fly", "fly a .tflite policy over cflib or MAVLink with the safety supervisor", "firmware_bridge"),
    "plot": ("firmware_bridge.cli_plot", "plot a flight log to PNGs", "firmware_bridge"),
    "demo": ("quadhil.demo", "train, export and fly a policy in a twin, end to end", "quadhil"),
    "bench": ("quadhil.bench", "benchmarks: sim, train, policy, sitl, bridge", "quadhil"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="quadhil",
        description="Train, export and fly quadcopter control policies (Keras DDPG -> TFLite -> cflib/MAVLink).",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text, _) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def run_command(name: str, argv: list[str], prog: str | None = None) -> int:
    """Build the parser of command ``name``, parse ``argv`` and run it; user errors exit 2."""
    module_name, help_text, _ = COMMANDS[name]
    prog = prog or f"quadhil {name}"
    try:
        module = importlib.import_module(module_name)
        parser = ArgumentParser(prog=prog, description=help_text)
        module.configure(parser)
        args = parser.parse_args(argv)
        return int(module.run(args) or 0)
    except QuadhilError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``quadhil`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    parser = _top_parser()
    args = parser.parse_args(argv)
    if args.version:
        from quadhil import __version__

        print(__version__)
        return 0
    parser.print_help()
    return 0 if not argv else 2


def package_main(package: str, argv: list[str] | None = None) -> int:
    """``python -m <package>``: the package's only command, or its command named first."""
    argv = sys.argv[1:] if argv is None else argv
    owned = [name for name, (_, _, pkg) in COMMANDS.items() if pkg == package]
    if len(owned) == 1:
        return run_command(owned[0], argv, prog=f"python -m {package}")
    if argv and argv[0] in owned:
        return run_command(argv[0], argv[1:], prog=f"python -m {package} {argv[0]}")
    print(f"usage: python -m {package} {{{','.join(owned)}}} ...", file=sys.stderr)
    return 2
