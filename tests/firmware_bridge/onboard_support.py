"""Shared fixtures of the onboard (C) tests: a Crazyflie motor-level actor, its generated weights,
and the host build of the app's portable C (quadhil_nn.c + quadhil_packets.h + host/harness.c)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "firmware_bridge" / "crazyflie_app"
HOST_CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"]
ARM_CFLAGS = ["-std=c11", "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-O2",
              "-Wall", "-Wextra", "-Werror"]


@dataclass
class Built:
    """A generated policy_weights.h and the harness compiled against it."""

    workdir: Path
    harness: Path
    actor: object
    spec: object
    vehicle: object

    def run(self, *args: str, data: bytes = b"") -> bytes:
        """Run the harness; return stdout (raises with stderr on failure)."""
        proc = subprocess.run([str(self.harness), *args], input=data, capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"harness {args} failed ({proc.returncode}): {proc.stderr.decode()}")
        return proc.stdout


def make_actor(vehicle_id: str = "crazyflie", action_mode: str = "motors", seed: int = 0, layout: str = "default",
               control_rate_hz: float = 100.0, action_history: int | None = None):
    """A freshly initialised actor exactly as the trainer builds it, with the trainer's scales
    (``action_history`` None: the layout's default)."""
    import keras

    from sim.contract import SPEC_LAYOUTS
    from sim.env import HoverTaskConfig
    from sim.vehicle import load_vehicle
    from train.networks import build_actor
    from train.obs_scale import with_fixed_obs_scales

    vehicle = load_vehicle(vehicle_id)
    history = {} if action_history is None else {"action_history": action_history}
    spec = SPEC_LAYOUTS[layout](vehicle, action_mode, control_rate_hz, **history)
    spec = with_fixed_obs_scales(spec, vehicle, HoverTaskConfig())
    keras.utils.set_random_seed(seed)
    return build_actor(spec), spec, vehicle


def actor_run_dir(path: Path, **make_actor_kwargs):
    """A run directory at ``path`` (created) holding ``make_actor(**make_actor_kwargs)`` as
    actor_best.keras and its spec in config.json: what ``quadhil export`` reads. Returns
    (actor, spec, vehicle)."""
    import json

    actor, spec, vehicle = make_actor(**make_actor_kwargs)
    path.mkdir()
    actor.save(path / "actor_best.keras")
    (path / "config.json").write_text(json.dumps({"spec": spec.to_dict()}))
    return actor, spec, vehicle


def stage_sources(workdir: Path, header_text: str) -> Path:
    """Write ``header_text`` as workdir/policy_weights.h next to a copy of quadhil_nn.c, so that
    its ``#include "policy_weights.h"`` finds this one and not the app's committed placeholder
    (a quoted include searches the including file's directory first)."""
    (workdir / "policy_weights.h").write_text(header_text)
    nn_c = workdir / "quadhil_nn.c"
    shutil.copyfile(APP / "src" / "quadhil_nn.c", nn_c)
    return nn_c


def compile_harness(workdir: Path, header_text: str) -> Path:
    """gcc -std=c11 -O2 -Wall -Wextra -Werror the harness against ``header_text``."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc not found")
    nn_c = stage_sources(workdir, header_text)
    exe = workdir / "harness"
    cmd = [gcc, *HOST_CFLAGS, f"-I{workdir}", f"-I{APP / 'src'}", str(nn_c),
           str(APP / "host" / "harness.c"), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"host build failed: {' '.join(cmd)}\n{proc.stderr}")
    return exe


def build(workdir: Path, **kw) -> Built:
    """Actor -> policy_weights.h -> compiled harness."""
    from deploy.export_c import render_header

    actor, spec, vehicle = make_actor(**kw)
    text, _ = render_header(actor, spec, vehicle)
    return Built(workdir, compile_harness(workdir, text), actor, spec, vehicle)


def tflite_act_fn(tflite: bytes, obs_dim: int, batch: int):
    """A LiteRT interpreter over ``tflite`` resized to ``batch`` rows: (batch, obs_dim) -> (batch, 4)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    inp = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(inp, [batch, obs_dim])
    interp.allocate_tensors()
    out = interp.get_output_details()[0]["index"]

    def act(obs: np.ndarray) -> np.ndarray:
        interp.set_tensor(inp, np.ascontiguousarray(obs, dtype=np.float32))
        interp.invoke()
        return interp.get_tensor(out).copy()

    return act
