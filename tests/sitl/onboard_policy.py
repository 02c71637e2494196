"""The motor-level Crazyflie policy the onboard-app tests fly, as the files the app and the bridge take.

Which policy: ``QUADHIL_TEST_MOTORS_POLICY`` (a run or policy directory) when set, else the
committed ``policies/crazyflie-motors`` when it exists, else a stand-in: a freshly initialised actor
whose output layer is set to a constant action 5 % above hover thrust (it climbs: a trained
policy's hover is asserted only for a trained policy, never for the stand-in).

:func:`integral_stand_in` is always a stand-in, of layout "integral" (the position-error integral
observed): the same climb, with a trace of the random output kernel left in, so that every input,
the integral included, moves its actions a little.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "policies" / "crazyflie-motors"
ENV = "QUADHIL_TEST_MOTORS_POLICY"
STAND_IN_MARGIN = 1.05  # x hover thrust
INTEGRAL_KERNEL_SCALE = 0.02  # of the random output kernel the integral stand-in keeps


@dataclass(frozen=True)
class MotorsPolicy:
    """A motor-level Crazyflie policy as ``policy_weights.h`` (the app, the twin) and .tflite (the bridge)."""

    name: str
    trained: bool
    weights_h: Path
    tflite: Path

    @cached_property
    def rate_hz(self) -> int:
        """The policy's control rate (Hz, an integer dividing the app's 1 kHz loop), from its .tflite's spec
        (read once: the tests ask for it in their loops)."""
        from deploy.runtime import Policy

        return int(round(Policy.load(self.tflite).spec.control_rate_hz))


def policy_source() -> tuple[Path | None, str]:
    """(directory, how it was chosen) of the trained policy to fly, or (None, reason) for the stand-in."""
    env = os.environ.get(ENV)
    if env:
        return Path(env), f"{ENV}={env}"
    if (COMMITTED / "config.json").exists():
        return COMMITTED, "committed policies/crazyflie-motors"
    return None, "no policies/crazyflie-motors committed: a constant 1.05 x hover stand-in"


def _stand_in_run(workdir: Path, layout: str = "default", kernel_scale: float = 0.0) -> Path:
    """A run directory holding the stand-in of ``layout``: its output layer's bias is 1.05 x hover
    thrust, its kernel ``kernel_scale`` x the random one (0: a constant action)."""
    from tests.firmware_bridge.onboard_support import make_actor

    actor, spec, vehicle = make_actor("crazyflie", "motors", control_rate_hz=100.0, layout=layout)
    hover = float(np.clip(2.0 * vehicle.hover_thrust_fraction * STAND_IN_MARGIN - 1.0, -0.99, 0.99))
    last = actor.get_layer("action")
    kernel = last.get_weights()[0]
    kernel = kernel_scale * kernel if kernel_scale else np.zeros_like(kernel)
    last.set_weights([kernel, np.full(4, np.arctanh(hover), np.float32)])
    run = workdir / f"stand-in-{layout}-run"
    run.mkdir(parents=True, exist_ok=True)
    actor.save(run / "actor_best.keras")
    (run / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
    return run


def _files(run: Path, workdir: Path) -> tuple[Path, Path]:
    """(policy_weights.h, .tflite) of ``run``: its own when it has them, else written under ``workdir``."""
    from deploy.export import export_policy
    from deploy.export_c import render_header
    from sim.vehicle import load_vehicle
    from train.networks import load_actor

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
    return weights, tflite


def prepare(workdir: Path) -> MotorsPolicy:
    """Write (or take) the policy's weights header and .tflite under ``workdir``."""
    source, why = policy_source()
    run = source if source is not None else _stand_in_run(workdir)
    return MotorsPolicy(why, source is not None, *_files(run, workdir))


def stand_in(workdir: Path) -> MotorsPolicy:
    """The default-layout stand-in (module docstring, 100 Hz) as its weights header and .tflite under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return MotorsPolicy("a 100 Hz stand-in climbing at 1.05 x hover", False, *_files(_stand_in_run(workdir), workdir))


def integral_stand_in(workdir: Path) -> MotorsPolicy:
    """The layout "integral" stand-in (module docstring) as its weights header and .tflite under ``workdir``."""
    run = _stand_in_run(workdir, layout="integral", kernel_scale=INTEGRAL_KERNEL_SCALE)
    return MotorsPolicy("a layout 'integral' stand-in climbing at 1.05 x hover", False, *_files(run, workdir))
