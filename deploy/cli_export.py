"""``quadhil export RUN --out F``: a trained actor -> .tflite with the contract inside (gated),
or C / PX4 ``mc_nn_control`` sources (``--format c|px4-nn``, built by deploy.export_c /
deploy.export_px4nn)."""

from __future__ import annotations

import argparse
import importlib

from sim.errors import NotAvailable
from sim.report import emit_json, print_table

FORMATS = {"tflite": None, "c": ("deploy.export_c", "export_c"), "px4-nn": ("deploy.export_px4nn", "export_px4nn")}


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil export``."""
    parser.add_argument("run", help="training run directory (config.json + actor_best.keras)")
    parser.add_argument("--out", required=True, help="file to write (.tflite; for c/px4-nn see those formats)")
    parser.add_argument("--quantize", choices=["none", "float16", "int8"], default="none",
                        help="none: float32; float16: float16 weights; int8: int8 weights and activations, "
                             "calibrated on visited observations (default none)")
    parser.add_argument("--format", choices=list(FORMATS), default="tflite", help="output format (default tflite)")
    parser.add_argument("--which", choices=["best", "last", "confirmed"], default="best",
                        help="actor_best, actor_last, or actor_confirmed (the actor that met a run's confirmed bar)")
    parser.add_argument("--parity-obs", type=int, default=10_000,
                        help="visited observations in the parity gate (default 10000)")
    parser.add_argument("--calibration-obs", type=int, default=4_000,
                        help="visited observations for int8 calibration (default 4000)")
    parser.add_argument("--episodes", type=int, default=200, help="closed-loop gate episodes (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rollouts and eval episodes")
    parser.add_argument("--no-battery-compensation", action="store_true",
                        help="--format c for a Crazyflie firmware built without battery compensation "
                             "(CONFIG_ENABLE_THRUST_BAT_COMPENSATED off): the app then reads PWM through the "
                             "thrust curve and compensates the battery from pm.vbat itself")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of figures")


def _dispatch(args: argparse.Namespace) -> int:
    module_name, func = FORMATS[args.format]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise NotAvailable(f"--format {args.format} is not available in this build ({module_name} is missing)") from None
    return int(getattr(module, func)(args) or 0)


def run(args: argparse.Namespace) -> int:
    """Export, printing the gate figures; refuse (exit 2, nothing written) if a gate fails."""
    from sim.errors import QuadhilError

    if args.no_battery_compensation and args.format != "c":
        raise QuadhilError("--no-battery-compensation describes the Crazyflie firmware the C app is built into: "
                           "use it with --format c")
    if FORMATS[args.format] is not None:
        return _dispatch(args)
    from deploy.errors import ExportRefused
    from deploy.export import export_policy

    if args.episodes < 1:
        raise QuadhilError("--episodes must be >= 1: the closed-loop gate is not optional")
    try:
        result = export_policy(args.run, args.out, args.quantize, parity_obs=args.parity_obs,
                               calibration_obs=args.calibration_obs, episodes=args.episodes, seed=args.seed,
                               which=args.which)
    except ExportRefused as exc:
        if exc.result is not None:
            _report(exc.result, args.json)
        raise
    _report(result, args.json)
    return 0


def _report(result, as_json: bool) -> None:
    s = result.summary()
    rows = [("quantization", s["quantization"]), ("parity observations", s["parity_obs"]),
            ("max |keras - tflite|", s["max_abs_diff"]), ("tolerance", s["parity_tolerance"]),
            ("keras success", s["keras_success"]), ("tflite success", s["closed_loop_success"]),
            ("written", s["written"] and s["out"]), ("sha256", s["sha256"][:16] + "..." if s["sha256"] else "-"),
            ("size (bytes)", s["size_bytes"])]
    if s.get("params_file"):
        rows.append(("PX4 parameters", s["params_file"]))
    if s["refused"]:
        rows.append(("REFUSED", s["refused"]))
    print_table("quadhil export", rows)
    if as_json:
        emit_json(s)
