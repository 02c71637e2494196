"""The motor-level Crazyflie policy the onboard-app tests fly, as the files the app and the bridge take.

Which policy: ``QUADHIL_TEST_MOTORS_POLICY`` (a run or policy directory) when set, else the
committed ``policies/crazyflie-motors`` when it exists, else a stand-in: a freshly initialised actor
whose output layer is set to a constant action 5 % above hover thrust (it climbs: a trained
policy's hover is asserted only for a trained policy, never for the stand-in).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "policies" / "crazyflie-motors"
ENV = "QUADHIL_TEST_MOTORS_POLICY"
STAND_IN_MARGIN = 1.05  # x hover thrust


@dataclass(frozen=True)
class MotorsPolicy:
    """A motor-level Crazyflie policy as ``policy_weights.h`` (the app, the twin) and .tflite (the bridge)."""

    name: str
    trained: bool
    weights_h: Path
    tflite: Path


def policy_source() -> tuple[Path | None, str]:
    """(directory, how it was chosen) of the trained policy to fly, or (None, reason) for the stand-in."""
    env = os.environ.get(ENV)
    if env:
        return Path(env), f"{ENV}={env}"
    if (COMMITTED / "config.json").exists():
        return COMMITTED, "committed policies/crazyflie-motors"
    return None, "no policies/crazyflie-motors committed: a constant 1.05 x hover stand-in"


def _stand_in_run(workdir: Path) -> Path:
    from tests.firmware_bridge.onboard_support import make_actor

    actor, spec, vehicle = make_actor("crazyflie", "motors", control_rate_hz=100.0)
    hover = float(np.clip(2.0 * vehicle.hover_thrust_fraction * STAND_IN_MARGIN - 1.0, -0.99, 0.99))
    last = actor.get_layer("action")
    last.set_weights([np.zeros_like(last.get_weights()[0]), np.full(4, np.arctanh(hover), np.float32)])
    run = workdir / "stand-in-run"
    run.mkdir(parents=True, exist_ok=True)
    actor.save(run / "actor_best.keras")
    (run / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
    return run


def prepare(workdir: Path) -> MotorsPolicy:
    """Write (or take) the policy's weights header and .tflite under ``workdir``."""
    from deploy.export import export_policy
    from deploy.export_c import render_header
    from sim.vehicle import load_vehicle
    from train.networks import load_actor

    source, why = policy_source()
    run = source if source is not None else _stand_in_run(workdir)
    weights = run / "policy_weights.h"
    if not weights.exists():
        actor, spec, _ = load_actor(run)
        text, _ = render_header(actor, spec, load_vehicle(spec.vehicle), source=str(run))
        weights = workdir / "policy_weights.h"
        weights.write_text(text)
    tflite = run / "policy.tflite"
    if not tflite.exists():
        tflite = workdir / "policy.tflite"
        export_policy(run, tflite, "none", parity_obs=500, episodes=0, log=lambda *a, **k: None)
    return MotorsPolicy(why, source is not None, weights, tflite)
