"""Actor and critic networks (Keras 3) and the on-disk layout of a training run.

The actor takes *raw* contract observations: a frozen ``keras.layers.Normalization`` built from
the spec's ``obs_mean``/``obs_std`` is its first layer, so the exported .tflite needs no
preprocessing and the bridge feeds it exactly what :func:`sim.contract.observe` returns.

A run directory holds::

    config.json        everything that shaped the run, with "spec": PolicySpec.to_dict()
    actor_best.keras   best actor by eval success (what eval/export/the bridge use)
    actor_last.keras   last actor
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from sim.contract import PolicySpec
from sim.errors import QuadhilError

ACTOR_BEST = "actor_best.keras"
ACTOR_LAST = "actor_last.keras"
ACTOR_CONFIRMED = "actor_confirmed.keras"  # the actor whose confirmation met train.target_success
ACTOR_FILES = {"best": ACTOR_BEST, "last": ACTOR_LAST, "confirmed": ACTOR_CONFIRMED}
CONFIG = "config.json"


def build_actor(spec: PolicySpec, hidden: tuple[int, ...] = (64, 64), activation: str = "tanh",
                name: str = "actor") -> keras.Model:
    """Raw observation (obs_dim,) -> normalized action (4,) in [-1, 1].

    Layout "px4-nn": ReLU hidden layers, a linear layer, and a frozen clip to [-1, 1] written with
    the only ops PX4's mc_nn_control resolver holds (FullyConnected, Relu, Add; no tanh):
    clip(z) = relu(z + 1) - relu(z - 1) - 1, as two fixed Dense layers. A bare linear output let
    DDPG's actor run away (non-finite actions within minutes).
    """
    if spec.layout == "px4-nn":
        return _build_px4nn_actor(spec, hidden, name)
    obs = keras.Input(shape=(spec.obs_dim,), dtype="float32", name="observation")
    mean = np.asarray(spec.obs_mean, dtype=np.float32)
    var = np.asarray(spec.obs_std, dtype=np.float32) ** 2
    x = keras.layers.Normalization(mean=mean, variance=var, name="obs_normalization")(obs)
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation=activation, name=f"hidden_{i}")(x)
    action = keras.layers.Dense(spec.action_dim, activation="tanh", name="action")(x)
    return keras.Model(obs, action, name=name)


def _build_px4nn_actor(spec: PolicySpec, hidden: tuple[int, ...], name: str) -> keras.Model:
    """ReLU MLP with a frozen hard clip made of Dense + ReLU (see :func:`build_actor`)."""
    n = spec.action_dim
    obs = keras.Input(shape=(spec.obs_dim,), dtype="float32", name="observation")
    mean = np.asarray(spec.obs_mean, dtype=np.float32)
    var = np.asarray(spec.obs_std, dtype=np.float32) ** 2
    x = keras.layers.Normalization(mean=mean, variance=var, name="obs_normalization")(obs)
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    z = keras.layers.Dense(n, activation="linear", name="action_raw")(x)
    eye = np.eye(n, dtype=np.float32)
    hinge = keras.layers.Dense(2 * n, activation="relu", name="clip_hinges", trainable=False,
                               kernel_initializer=keras.initializers.Constant(np.hstack([eye, eye]).tolist()),
                               bias_initializer=keras.initializers.Constant([1.0] * n + [-1.0] * n))(z)
    action = keras.layers.Dense(n, activation="linear", name="action", trainable=False,
                                kernel_initializer=keras.initializers.Constant(np.vstack([eye, -eye]).tolist()),
                                bias_initializer=keras.initializers.Constant(-1.0))(hinge)
    return keras.Model(obs, action, name=name)


def build_critic(spec: PolicySpec, hidden: tuple[int, ...] = (128, 128), name: str = "critic",
                 privileged_dim: int = 0, layer_norm: bool = False) -> keras.Model:
    """(raw observation [| privileged state], action) -> Q value (1,).

    ``layer_norm``: each hidden layer is Dense -> LayerNormalization -> ReLU (Ball et al. 2023,
    "Efficient online RL with offline data"; Bjorck et al. 2022): it bounds how far Q can
    extrapolate to actions the replay never holds, which is where plain DDPG's critic diverges.

    ``privileged_dim`` > 0: the observation input is followed by that many critic-only columns
    (:meth:`sim.env.HoverTask.privileged_state`, already unit scale, so normalized as N(0, 1))."""
    obs = keras.Input(shape=(spec.obs_dim + privileged_dim,), dtype="float32", name="observation")
    act = keras.Input(shape=(spec.action_dim,), dtype="float32", name="action")
    mean = np.concatenate([np.asarray(spec.obs_mean, dtype=np.float32), np.zeros(privileged_dim, np.float32)])
    var = np.concatenate([np.asarray(spec.obs_std, dtype=np.float32) ** 2, np.ones(privileged_dim, np.float32)])
    x = keras.layers.Normalization(mean=mean, variance=var, name="obs_normalization")(obs)
    x = keras.layers.Concatenate()([x, act])
    for i, units in enumerate(hidden):
        if layer_norm:
            x = keras.layers.Dense(units, name=f"hidden_{i}")(x)
            x = keras.layers.LayerNormalization(name=f"hidden_{i}_norm")(x)
            x = keras.layers.Activation("relu", name=f"hidden_{i}_relu")(x)
        else:
            x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    q = keras.layers.Dense(1, name="q")(x)
    return keras.Model([obs, act], q, name=name)


def load_run_spec(run_dir: str | Path) -> tuple[PolicySpec, dict]:
    """(spec, config) of a run directory; clear errors if it is not one."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.exists():
        raise QuadhilError(f"{run_dir} is not a training run: no {CONFIG}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise QuadhilError(f"{path} is not valid JSON: {exc}") from None
    if "spec" not in config:
        raise QuadhilError(f"{path} has no 'spec' entry")
    return PolicySpec.from_dict(config["spec"]), config


def load_actor(run_dir: str | Path, which: str = "best") -> tuple[keras.Model, PolicySpec, dict]:
    """(actor, spec, config) of a run directory; ``which`` is 'best', 'last' or 'confirmed' (the
    actor that met a run's confirmed bar, train.confirm_episodes)."""
    run_dir = Path(run_dir)
    spec, config = load_run_spec(run_dir)
    if which not in ACTOR_FILES:
        raise QuadhilError(f"which actor: one of {sorted(ACTOR_FILES)}, got {which!r}")
    path = run_dir / ACTOR_FILES[which]
    if not path.exists():
        raise QuadhilError(f"{run_dir} has no {path.name}")
    try:
        actor = keras.models.load_model(path, compile=False)
    except Exception as exc:  # keras raises several types for corrupt files
        raise QuadhilError(f"cannot load actor {path}: {exc}") from None
    return actor, spec, config
