"""``quadhil export --format px4-nn RUN --out DIR``: a px4-nn actor for PX4's ``mc_nn_control``.

What PX4 runs (PX4-Autopilot src/modules/mc_nn_control/, read for this exporter):

* mc_nn_control.cpp ``PopulateInputTensor``: 15 float inputs, world ENU / body FLU after its
  frame_transf matrices: [setpoint - position (3), R(0,0..2), R(1,0..2) (6), velocity (3),
  body rates (3)]; no clipping, no normalization.
* its op resolver ``MicroMutableOpResolver<3>``: FullyConnected, Relu, Add only.
* ``RescaleActions`` (inline in mc_nn_control.cpp): each output clamped to [-1, 1], read as a thrust of
  ``action + 1`` in the units of MC_NN_THRST_COEF (x 1e-5, per rps^2), turned into rpm, placed
  between MC_NN_MIN_RPM and MC_NN_MAX_RPM, then through ``0.8 x^2 + 0.2 x``, to actuator_motors.
* control_net.cpp / control_net.hpp: the model as ``alignas(16) const unsigned char
  control_net_tflite[]`` and ``constexpr unsigned int control_net_tflite_size``.

So the exported network differs from the training actor only by exact algebra: the Normalization
layer is folded into the first Dense layer, and the first three input columns are negated
(quadhil's contract feeds position - setpoint). A parity gate on visited observations checks that
the converted model, fed PX4's inputs, gives the actor's actions (refused otherwise), and the ops
are checked against the module's resolver.

Writes into DIR: ``control_net.tflite``, ``control_net.cpp``, ``control_net.hpp`` (drop-in
replacements for the module's files), ``px4_params.txt`` (MC_NN_* values for the vehicle),
``control_net.npz`` (the same layers for the PX4 twin's ``--controller mc_nn:DIR/control_net.npz``)
and ``px4nn_export.json`` (figures). TensorFlow is imported only here and in deploy/export.py.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from deploy.errors import ExportRefused
from sim.contract import PolicySpec
from sim.sitl.px4.nn_control import THRUST_COEFF_SCALE, px4_rescale  # RescaleActions, shared with the twin
from sim.vehicle import GRAVITY_MPS2, Vehicle, load_vehicle

PX4_INPUT_ORDER = ("position_error_w", "rotation_matrix_rows01_wb", "velocity_w", "omega_b")
ALLOWED_OPS = {"FULLY_CONNECTED", "RELU", "ADD"}
PARITY_TOLERANCE = 1e-5


def check_spec(spec: PolicySpec) -> None:
    """Refuse a spec whose inputs/outputs are not mc_nn_control's."""
    names = tuple(f.name for f in spec.observation)
    if spec.layout != "px4-nn" or names != PX4_INPUT_ORDER or spec.obs_dim != 15:
        raise ExportRefused(f"--format px4-nn needs a run trained with --layout px4-nn (15 inputs {PX4_INPUT_ORDER}); "
                            f"this run has layout {spec.layout!r} with {names}")
    if spec.action_mode != "motors":
        raise ExportRefused("--format px4-nn needs action_mode 'motors' (mc_nn_control writes actuator_motors)")


def px4_network(actor, spec: PolicySpec):
    """A Keras model of Dense(relu)... Dense(linear) taking PX4's input vector, equal in exact
    arithmetic to ``actor`` fed the contract's observation."""
    import keras

    from deploy.export_c import actor_layers

    mean, std, dense = actor_layers(actor)
    if any(act not in ("relu", "linear") for _, _, act in dense):
        raise ExportRefused("mc_nn_control's op resolver runs FullyConnected, Relu and Add only: the actor's "
                            f"layers must be ReLU or linear, got {[a for _, _, a in dense]}")
    sign = np.ones(spec.obs_dim)
    sign[spec.obs_slice("position_error_w")] = -1.0  # PX4 feeds setpoint - position
    k0, b0, _ = dense[0]
    k0 = k0.astype(np.float64)
    # x_norm = (s * x_px4 - mean) / std  =>  W' = diag(s / std) W,  b' = b - (mean / std) @ W
    kernel = (sign / std)[:, None] * k0
    bias = b0.astype(np.float64) - (mean / std) @ k0
    # batch fixed at 1: TFLM allocates from the stored shape, and mc_nn_control fills one row
    x = inp = keras.Input(shape=(spec.obs_dim,), batch_size=1, dtype="float32", name="px4_input")
    weights = [(kernel, bias, dense[0][2])] + list(dense[1:])
    for i, (k, b, act) in enumerate(weights):
        layer = keras.layers.Dense(k.shape[1], activation=act, name=f"fc_{i}")
        x = layer(x)
        layer.set_weights([np.asarray(k, np.float32), np.asarray(b, np.float32)])
    return keras.Model(inp, x, name="control_net")


def to_px4_inputs(obs: np.ndarray, spec: PolicySpec) -> np.ndarray:
    """Contract observations (N, 15) -> what mc_nn_control feeds (setpoint - position)."""
    out = np.array(obs, dtype=np.float32, copy=True)
    out[:, spec.obs_slice("position_error_w")] *= -1.0
    return out


def tflite_ops(tflite: bytes) -> set[str]:
    """Builtin op names in a .tflite (read with the LiteRT interpreter)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    return {d["op_name"] for d in interp._get_ops_details()}


def run_tflite(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Run ``tflite`` on a batch (N, 15) -> (N, 4)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    inp = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(inp, list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp, np.ascontiguousarray(x, dtype=np.float32))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def write_npz(path: Path, net, spec: PolicySpec, params: dict) -> None:
    """The PX4 network's layers for the PX4 twin's mc_nn_control (sim/sitl/px4/nn_control.py),
    which may not import TensorFlow/LiteRT: kernels, biases, activations, vehicle, MC_NN_* values."""
    import keras

    arrays: dict = {"vehicle": np.array(spec.vehicle)}
    dense = [layer for layer in net.layers if isinstance(layer, keras.layers.Dense)]
    arrays["n_layers"] = np.array(len(dense))
    for i, layer in enumerate(dense):
        k, b = layer.get_weights()
        arrays[f"kernel_{i}"] = np.asarray(k, np.float32)
        arrays[f"bias_{i}"] = np.asarray(b, np.float32)
        arrays[f"activation_{i}"] = np.array(layer.get_config()["activation"])
    for key in ("MC_NN_THRST_COEF", "MC_NN_MIN_RPM", "MC_NN_MAX_RPM", "THR_MDL_FAC"):
        arrays[key] = np.array(float(params[key]))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def c_array_sources(tflite: bytes) -> tuple[str, str]:
    """(control_net.cpp, control_net.hpp) in the module's own layout."""
    rows = [", ".join(f"0x{b:02x}" for b in tflite[i:i + 12]) for i in range(0, len(tflite), 12)]
    cpp = ("// Generated by `quadhil export --format px4-nn`; replaces src/modules/mc_nn_control/control_net.cpp\n"
           "#include <cstdint>\n#include \"control_net.hpp\"\n\n"
           "alignas(16) const unsigned char control_net_tflite[] = {\n\t" + ",\n\t".join(rows) + "\n};\n")
    hpp = ("// Generated by `quadhil export --format px4-nn`; replaces src/modules/mc_nn_control/control_net.hpp\n"
           "#include <cstdint>\n\n"
           f"constexpr unsigned int control_net_tflite_size = {len(tflite)};\n"
           "extern const unsigned char control_net_tflite[];\n")
    return cpp, hpp


def recommended_params(vehicle: Vehicle, spec: PolicySpec) -> dict:
    """MC_NN_* values that make mc_nn_control's action scale the contract's, for a motor with
    thrust ~ rpm^2 reaching the vehicle's max thrust at max rpm, and the thrust error left by the
    module's fixed 0.8 x^2 + 0.2 x compensation if actuator_motors are linear in thrust
    (THR_MDL_FAC = 1 on a quadratic motor)."""
    c0, c1, c2 = vehicle.thrust_curve_n
    if c0 != 0.0 or c1 != 0.0:
        note = "thrust curve is not purely quadratic: MC_NN_* are an approximation"
    else:
        note = "thrust curve is quadratic in the normalized command"
    # contract: thrust = (a + 1) / 2 * T_max; module: (a + 1) = coeff * rps^2 in its own units.
    # Choose units of T_max / 2 and max rpm where the motor gives T_max.
    max_rpm = _vehicle_max_rpm(vehicle)
    max_rps = max_rpm / 60.0
    coeff = 2.0 / (max_rps * max_rps)
    f = np.linspace(0.0, 1.0, 1001)
    a = 2.0 * f - 1.0
    delivered = px4_rescale(a, coeff * THRUST_COEFF_SCALE, 0.0, max_rpm)  # = thrust fraction if linear
    err = delivered - f
    hover_f = vehicle.mass_kg * GRAVITY_MPS2 / (4.0 * vehicle.max_thrust_n)
    hover_err = float(np.interp(hover_f, f, err))
    return {
        "MC_NN_THRST_COEF": round(coeff * THRUST_COEFF_SCALE, 4),
        "MC_NN_MIN_RPM": 0,
        "MC_NN_MAX_RPM": int(round(max_rpm)),
        "THR_MDL_FAC": 1.0,
        "max_thrust_error_fraction": float(np.max(np.abs(err))),
        "hover_thrust_error_fraction": hover_err,
        "note": note + ("; MC_NN_THRST_COEF above its metadata max 5.0 (set it from the shell)"
                        if coeff * THRUST_COEFF_SCALE > 5.0 else ""),
    }


def _vehicle_max_rpm(vehicle: Vehicle) -> float:
    """Max rotor speed of the vehicle's motors (rpm). x500: the gz model's maxRotVelocity 1000 rad/s
    (PX4-gazebo-models models/x500/model.sdf), the source of sim/vehicles/x500.toml's thrust curve."""
    known = {"x500": 1000.0 * 60.0 / (2.0 * math.pi)}
    if vehicle.id not in known:
        raise ExportRefused(f"no max rotor speed known for vehicle {vehicle.id!r}; px4-nn export supports x500")
    return known[vehicle.id]


def export_px4nn(args: argparse.Namespace) -> int:
    """Write the mc_nn_control files for run ``args.run`` into directory ``args.out``."""
    from deploy.export import convert, keras_act_fn
    from sim.report import emit_json, print_table
    from train.evaluate import collect_observations
    from train.networks import load_actor

    if getattr(args, "quantize", "none") not in (None, "none"):
        raise ExportRefused("--format px4-nn writes a float32 model (mc_nn_control feeds float tensors); drop --quantize")
    run = Path(args.run)
    actor, spec, _ = load_actor(run, getattr(args, "which", "best") or "best")
    check_spec(spec)
    vehicle = load_vehicle(spec.vehicle)
    net = px4_network(actor, spec)
    tflite = convert(net, "none")
    ops = tflite_ops(tflite)
    if not ops <= ALLOWED_OPS:
        raise ExportRefused(f"converted model uses ops {sorted(ops - ALLOWED_OPS)} that mc_nn_control's resolver lacks")
    n_obs = int(getattr(args, "parity_obs", 10_000) or 10_000)
    keras_fn = keras_act_fn(actor)
    obs = collect_observations(keras_fn, spec, vehicle.id, n_obs, seed=int(getattr(args, "seed", 0) or 0))
    ref = np.asarray(keras_fn(obs), dtype=np.float32)
    got = run_tflite(tflite, to_px4_inputs(obs, spec))
    max_diff = float(np.max(np.abs(got - ref)))
    params = recommended_params(vehicle, spec)
    figures = {
        "format": "px4-nn", "vehicle": spec.vehicle, "ops": sorted(ops), "parity_obs": n_obs,
        "max_abs_diff": max_diff, "parity_tolerance": PARITY_TOLERANCE, "size_bytes": len(tflite),
        "params": params, "refused": None,
    }
    if not max_diff <= PARITY_TOLERANCE:
        figures["refused"] = f"parity {max_diff:.3g} > {PARITY_TOLERANCE}"
        raise ExportRefused(f"px4-nn model differs from the actor by {max_diff:.3g} > {PARITY_TOLERANCE}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpp, hpp = c_array_sources(tflite)
    (out / "control_net.tflite").write_bytes(tflite)
    (out / "control_net.cpp").write_text(cpp)
    (out / "control_net.hpp").write_text(hpp)
    write_npz(out / "control_net.npz", net, spec, params)
    lines = [f"# mc_nn_control parameters for {spec.vehicle} (quadhil export --format px4-nn; see docs/onboard.md)"]
    lines += [f"param set {k} {v}" for k, v in params.items() if k.isupper()]
    lines.append(f"# thrust error left by the module's 0.8x^2+0.2x compensation: max {params['max_thrust_error_fraction']:.3f}"
                 f" of max thrust, {params['hover_thrust_error_fraction']:+.3f} at hover ({params['note']})")
    (out / "px4_params.txt").write_text("\n".join(lines) + "\n")
    figures["out"] = str(out)
    (out / "px4nn_export.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
    print_table("quadhil export --format px4-nn", [
        ("vehicle", spec.vehicle), ("ops", ", ".join(sorted(ops))), ("parity observations", n_obs),
        ("max |actor - px4 tflite|", max_diff), ("tflite bytes", len(tflite)),
        ("MC_NN_THRST_COEF", params["MC_NN_THRST_COEF"]), ("MC_NN_MAX_RPM", params["MC_NN_MAX_RPM"]),
        ("written", str(out))])
    if getattr(args, "json", False):
        emit_json(figures)
    return 0
