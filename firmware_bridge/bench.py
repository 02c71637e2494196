"""``quadhil bench bridge``: fly a twin with the bridge's loop at 100 Hz and at 500 Hz.

For each rate: start the twin (a subprocess, ended by pid), fly the policy armed for
``--duration`` s of hover (plus takeoff and landing) through the real client library, and report
the in-process latency from telemetry arrival to command sent (p50/p99, over ticks that had a
fresh sample), the deadline miss rate, the share of ticks with a fresh sample, state age, policy
inference time and the bridge process's CPU use. The Crazyflie streams state at most at 100 Hz
(log period unit 10 ms), the PX4 twin at up to 250 Hz: at 500 Hz most ticks reuse a sample and
``fresh_rate`` says how many did not. Benchmarks measure; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sim.errors import QuadhilError
from sim.sitl.processes import free_port, stop_process, twin_command, wait_ready
from sim.report import emit_json, print_table

REPO = Path(__file__).resolve().parents[1]
POLICY_DIRS = {"crazyflie": "crazyflie-hover", "px4": "x500-hover"}
VARIANTS = ("plain", "live", "mocap")


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil bench bridge``."""
    parser.add_argument("--twin", choices=("crazyflie", "px4"), default="crazyflie", help="which twin to fly")
    parser.add_argument("--model", default=None,
                        help="policy .tflite (default: policies/crazyflie-hover or policies/x500-hover)")
    parser.add_argument("--rates", default="100,500", help="control rates to run, Hz (default 100,500)")
    parser.add_argument("--duration", type=float, default=30.0, help="hover seconds per rate (default 30)")
    parser.add_argument("--realtime", action="store_true",
                        help="real-time priority for the twin and the bridge (busy machines)")
    parser.add_argument("--variants", default="plain",
                        help="comma list, each flown at every rate, side by side: plain, live (--live: the "
                             "Foxglove server fed every tick), mocap (--mocap: the twin's mocap stream forwarded "
                             "to a mocap-fed twin at 100 Hz); default plain")
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")


def _default_model(twin: str, tmp: Path) -> Path:
    d = REPO / "policies" / POLICY_DIRS[twin]
    tfl = sorted(d.glob("*.tflite")) if d.is_dir() else []
    if tfl:
        return tfl[0]
    if (d / "config.json").exists():
        out = tmp / "policy.tflite"
        proc = subprocess.run([sys.executable, "-m", "quadhil", "export", str(d), "--out", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise QuadhilError(f"could not export {d}: {proc.stderr.strip().splitlines()[-1:]}")
        return out
    raise QuadhilError(f"no policy in {d}; pass --model")


def _start_twin(twin: str, realtime: bool, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    if twin == "crazyflie":
        cmd = twin_command("crazyflie", "--port", "0", *(["--realtime"] if realtime else []), *extra)
    else:
        cmd = twin_command("px4", "--port", str(free_port()), "--listen-port", str(free_port()), "--no-gcs", *extra)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    if realtime and twin == "px4":  # the PX4 twin has no --realtime flag: set its priority from here
        try:
            os.sched_setscheduler(proc.pid, os.SCHED_FIFO, os.sched_param(10))
        except (AttributeError, PermissionError, OSError):
            pass
    try:
        return proc, wait_ready(proc, 30.0)
    except RuntimeError:
        stop_process(proc)
        raise QuadhilError(f"the {twin} twin did not start") from None


def run(args: argparse.Namespace) -> int:
    """Fly once per rate; print a table and (with --json) one JSON object."""
    from firmware_bridge.flight import Flight, FlyConfig

    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if not rates or any(r <= 0 for r in rates):
        raise QuadhilError(f"--rates must be positive numbers, got {args.rates!r}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if not variants or bad:
        raise QuadhilError(f"--variants: each must be one of {', '.join(VARIANTS)}, got {args.variants!r}")
    out: dict = {"twin": args.twin, "duration_s": args.duration, "rates": {}, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else _default_model(args.twin, Path(tmp))
        out["model"] = str(model)
        target = "0,0,1" if args.twin == "crazyflie" else "0,0,1.5"
        for variant in variants:
            for rate in rates:
                mocap_port = free_port() if variant == "mocap" else None
                estimate = "mocap" if args.twin == "crazyflie" else "vision"
                extra = ("--estimate", estimate, "--mocap-port", str(mocap_port)) if mocap_port else ()
                proc, uri = _start_twin(args.twin, args.realtime, extra)
                try:
                    cfg = FlyConfig(model=str(model), link=uri, target_w=tuple(float(v) for v in target.split(",")),
                                    duration_s=args.duration, arm=True, log_dir=str(Path(tmp) / "flights"),
                                    rate_hz=rate, allow_rate_mismatch=True,  # measuring other rates is the point
                                    status=False, realtime=args.realtime, live=variant == "live", live_port=0,
                                    mocap=f"sitl:127.0.0.1:{mocap_port}" if mocap_port else None)
                    res = Flight(cfg).run()
                finally:
                    stop_process(proc)
                out["variants"].setdefault(variant, {})[f"{rate:g}"] = {
                    "latency_p50_ms": res.latency_p50_ms, "latency_p99_ms": res.latency_p99_ms,
                    "miss_rate": res.deadline_miss_rate, "ticks": res.ticks, "cpu_percent": res.cpu_percent,
                    "failsafe": res.failsafe, "mocap": res.extra.get("mocap")}
                if variant != variants[0]:
                    continue
                out["rates"][f"{rate:g}"] = {
                    "latency_p50_ms": res.latency_p50_ms, "latency_p99_ms": res.latency_p99_ms,
                    "miss_rate": res.deadline_miss_rate, "fresh_rate": res.fresh_rate,
                    "state_age_p99_ms": res.state_age_p99_ms, "infer_p99_ms": res.infer_p99_ms,
                    "cpu_percent": res.cpu_percent, "ticks": res.ticks, "rmse_m": res.rmse_m,
                    "failsafe": res.failsafe,
                }
    out["loadavg"] = list(os.getloadavg())
    out["realtime"] = bool(args.realtime)
    rows = []
    for rate, r in out["rates"].items():
        rows += [(f"{rate} Hz latency p50 / p99 (ms)", f"{_f(r['latency_p50_ms'])} / {_f(r['latency_p99_ms'])}"),
                 (f"{rate} Hz deadline miss rate", r["miss_rate"]), (f"{rate} Hz fresh-sample ticks", r["fresh_rate"]),
                 (f"{rate} Hz bridge CPU (%)", r["cpu_percent"]), (f"{rate} Hz hover RMSE (m)", _f(r["rmse_m"])),
                 (f"{rate} Hz failsafe", r["failsafe"] or "none")]
    if len(variants) > 1 or variants != ["plain"]:
        for variant, per_rate in out["variants"].items():
            for rate, r in per_rate.items():
                rows.append((f"{variant} {rate} Hz latency p50 / p99 (ms)",
                             f"{_f(r['latency_p50_ms'])} / {_f(r['latency_p99_ms'])} ({r['ticks']} ticks, "
                             f"failsafe: {r['failsafe'] or 'none'})"))
    rows.append(("loadavg", " ".join(f"{v:.2f}" for v in out["loadavg"])))
    print_table(f"quadhil bench bridge ({args.twin} twin)", rows)
    if args.json:
        emit_json(out)
    return 0


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"
