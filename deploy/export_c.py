"""``quadhil export --format c RUN --out .../policy_weights.h``: the actor as generated C.

Writes the weights of the very Keras actor that the .tflite export converts (``actor_best.keras``
of a run) as ``static const float`` arrays plus the contract facts the Crazyflie app needs:
vehicle (the app refuses a network not made for a Crazyflie), action mode, control rate,
observation layout, clip, nominal max thrust and the vehicle's thrust curve, the hover action
the action history starts from, and, for layouts that hold the position-error integral, its
radius and clip (:data:`sim.contract.INTEGRAL_RADIUS_M`, :data:`sim.contract.INTEGRAL_LIMIT_M_S`).
``firmware_bridge/crazyflie_app/src/quadhil_nn.c`` runs it (dense layers with tanh/relu/linear
activations, normalization first, exactly the .tflite's math).

TensorFlow/Keras are imported here only (an exporter module, DESIGN.md layer rules).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from deploy.errors import ExportRefused
from sim.contract import INTEGRAL_LIMIT_M_S, INTEGRAL_RADIUS_M, PolicySpec, hover_action
from sim.sitl.app_channel import policy_refusal
from sim.vehicle import Vehicle, load_vehicle

# sim.contract observation field -> id in quadhil_nn.h
FIELD_IDS = {
    "position_error_w": 1,
    "rotation_matrix_wb": 2,
    "rotation_matrix_rows01_wb": 3,
    "velocity_w": 4,
    "omega_b": 5,
    "last_actions": 6,
    "position_error_integral_w": 7,
}
ACTIVATION_IDS = {"linear": "QH_ACT_LINEAR", "tanh": "QH_ACT_TANH", "relu": "QH_ACT_RELU"}


def _c_float(x: float) -> str:
    """A C float literal that rounds back to the same float32."""
    v = float(np.float32(x))
    if not np.isfinite(v):
        raise ExportRefused(f"non-finite weight {v} cannot be exported")
    text = f"{v:.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def _c_array(name: str, values: np.ndarray, per_line: int = 8) -> str:
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    body = []
    for i in range(0, flat.size, per_line):
        body.append("  " + ", ".join(_c_float(v) for v in flat[i:i + per_line]) + ",")
    return f"static const float {name}[{flat.size}] = {{\n" + "\n".join(body) + "\n};\n"


def actor_layers(actor) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, str]]]:
    """(mean, std, [(kernel (in, out), bias (out,), activation), ...]) of a quadhil actor.

    The actor is ``train.networks.build_actor``'s: Input -> Normalization -> Dense... ; any other
    layer type is refused (the C forward pass would not be the .tflite's math).
    """
    import keras

    mean = std = None
    dense = []
    for layer in actor.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Normalization):
            mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), dtype=np.float64).reshape(-1)
            var = np.asarray(keras.ops.convert_to_numpy(layer.variance), dtype=np.float64).reshape(-1)
            std = np.maximum(np.sqrt(var), keras.config.epsilon())
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
            act = getattr(layer.activation, "__name__", str(layer.activation))
            if act not in ACTIVATION_IDS:
                raise ExportRefused(f"layer {layer.name!r}: activation {act!r} has no C implementation")
            dense.append((kernel, bias, act))
        else:
            raise ExportRefused(f"layer {layer.name!r} ({type(layer).__name__}) cannot be exported to C")
    if mean is None or not dense:
        raise ExportRefused("actor must be Normalization followed by Dense layers (train.networks.build_actor)")
    if dense[-1][0].shape[1] != 4:
        raise ExportRefused(f"actor must output 4 actions, got {dense[-1][0].shape[1]}")
    return mean, std, dense


def _integral_defines(spec: PolicySpec) -> list[str]:
    """The #defines of the position-error integral (m*s, world ENU) for a layout that observes it;
    none otherwise, so a header without the integral reads as it did before the field had a C builder."""
    if not spec.uses_position_integral:
        return []
    return [
        "/* position_error_integral_w (sim.contract.integrate_position_error): per control tick, + (p - target)",
        " * / QH_CONTROL_RATE_HZ while |p - target| < QH_INTEGRAL_RADIUS_M (m), each axis clipped to",
        " * +-QH_INTEGRAL_LIMIT_M_S (m*s) */",
        "#define QH_POSITION_INTEGRAL 1",
        f"#define QH_INTEGRAL_RADIUS_M {_c_float(INTEGRAL_RADIUS_M)}",
        f"#define QH_INTEGRAL_LIMIT_M_S {_c_float(INTEGRAL_LIMIT_M_S)}",
    ]


def render_header(actor, spec: PolicySpec, vehicle: Vehicle, source: str = "") -> tuple[str, dict]:
    """Text of ``policy_weights.h`` and its figures for ``actor`` made under ``spec``."""
    spec.check_vehicle(vehicle.id)
    mean, std, dense = actor_layers(actor)
    if mean.size != spec.obs_dim or dense[0][0].shape[0] != spec.obs_dim:
        raise ExportRefused(f"actor input {dense[0][0].shape[0]} does not match spec obs_dim {spec.obs_dim}")
    spec_json = spec.to_json()
    spec_sha = hashlib.sha256(spec_json.encode()).hexdigest()
    hover = hover_action(spec, vehicle)
    n_params = int(sum(k.size + b.size for k, b, _ in dense) + 2 * mean.size)
    width = int(max(max(k.shape) for k, _, _ in dense))
    c0, c1, c2 = (float(c) for c in vehicle.thrust_curve_n)
    out = [
        "/* policy_weights.h - GENERATED by `quadhil export --format c`; do not edit.",
        f" * source: {source or 'in-memory actor'}",
        f" * vehicle: {spec.vehicle}, action mode: {spec.action_mode}, {spec.control_rate_hz:g} Hz, layout {spec.layout}",
        f" * spec sha256: {spec_sha}",
        " * Included by quadhil_nn.c only (static const arrays). */",
        "#ifndef QUADHIL_POLICY_WEIGHTS_H",
        "#define QUADHIL_POLICY_WEIGHTS_H",
        "",
        '#include "quadhil_nn.h"',
        "",
        f'#define QH_POLICY_VEHICLE "{spec.vehicle}"',
        f'#define QH_POLICY_ACTION_MODE "{spec.action_mode}"',
        f"#define QH_POLICY_MOTOR_LEVEL {1 if spec.action_mode == 'motors' else 0}",
        f'#define QH_POLICY_SPEC_SHA256 "{spec_sha}"',
        f"#define QH_CONTROL_RATE_HZ {_c_float(spec.control_rate_hz)}",
        f"#define QH_OBS_DIM {spec.obs_dim}",
        f"#define QH_ACTION_HISTORY {spec.action_history}",
        f"#define QH_POSITION_ERROR_CLIP_M {_c_float(spec.position_error_clip_m)}",
        f"#define QH_THRUST_MAX_N {_c_float(spec.thrust_max_n)}",
        f"/* {vehicle.id} thrust curve T(u) = c2 u^2 + c1 u + c0 (N), u = PWM/65535 (sim/vehicles/{Path(vehicle.source_path).name}) */",
        f"#define QH_THRUST_CURVE_C0 {_c_float(c0)}",
        f"#define QH_THRUST_CURVE_C1 {_c_float(c1)}",
        f"#define QH_THRUST_CURVE_C2 {_c_float(c2)}",
        "/* battery voltage the curve holds at (V): the full cell of the vehicle file's [battery] */",
        f"#define QH_THRUST_CURVE_SUPPLY_V {_c_float(vehicle.battery.voltage_full_v)}",
        "/* battery compensation of the firmware build (sim.command_path): a motor's force f means",
        " * f * THRUST_MAX newtons when on, PWM f through the curve above when off */",
        f"#define QH_BATTERY_COMPENSATED {1 if vehicle.compensated else 0}",
        f"#define QH_FW_THRUST_MAX_N {_c_float(vehicle.command_thrust_max_n)}",
        f"#define QH_MAX_WIDTH {width}",
        *_integral_defines(spec),
        "",
        "static const qh_obs_field_t qh_obs_fields[] = {",
    ]
    for f in spec.observation:
        if f.name not in FIELD_IDS:
            raise ExportRefused(f"observation field {f.name!r} has no C builder")
        out.append(f"  {{{FIELD_IDS[f.name]}u, {f.size}u}},  /* {f.name} */")
    out += ["};", ""]
    out.append(_c_array("qh_hover_action", hover))
    out.append(_c_array("qh_obs_mean", mean))
    out.append(_c_array("qh_obs_std", std))
    for i, (k, b, _) in enumerate(dense):
        out.append(_c_array(f"qh_kernel_{i}", k))
        out.append(_c_array(f"qh_bias_{i}", b))
    out.append("static const qh_layer_t qh_layers[] = {")
    for i, (k, b, act) in enumerate(dense):
        out.append(f"  {{{k.shape[0]}u, {k.shape[1]}u, {ACTIVATION_IDS[act]}, qh_kernel_{i}, qh_bias_{i}}},")
    out += ["};", "", "#endif /* QUADHIL_POLICY_WEIGHTS_H */", ""]
    app_refusal = policy_refusal(spec.vehicle, spec.action_mode, spec.control_rate_hz, spec.action_history)
    figures = {
        "format": "c",
        "vehicle": spec.vehicle,
        "action_mode": spec.action_mode,
        "layers": [[int(k.shape[0]), int(k.shape[1]), act] for k, _, act in dense],
        "parameters": n_params,
        "weight_bytes": 4 * n_params,
        "spec_sha256": spec_sha,
        "crazyflie_app_accepts": app_refusal is None,
        "crazyflie_app_refusal": app_refusal,
        "battery_compensated": bool(vehicle.compensated),
    }
    return "\n".join(out), figures


PLACEHOLDER_VEHICLE = "none: run quadhil export --format c"


def placeholder_header() -> str:
    """The policy_weights.h committed with the app before any policy is exported: a Crazyflie
    motor-level network shape with zero weights whose vehicle is not "crazyflie", so the app
    builds, the relay (mode 1) works, and mode 2 refuses to fly it."""
    import keras

    from sim.contract import SPEC_LAYOUTS
    from train.networks import build_actor

    vehicle = load_vehicle("crazyflie")
    spec = SPEC_LAYOUTS["default"](vehicle, "motors", 500.0)
    actor = build_actor(spec)
    for layer in actor.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    text, _ = render_header(actor, spec, vehicle, source="PLACEHOLDER: no policy exported yet, mode 2 refuses it")
    return text.replace('#define QH_POLICY_VEHICLE "crazyflie"', f'#define QH_POLICY_VEHICLE "{PLACEHOLDER_VEHICLE}"')


def export_c(args: argparse.Namespace) -> int:
    """Write ``args.out`` (policy_weights.h) from run ``args.run``; print the figures (``--json``:
    one JSON object last)."""
    from sim.report import emit_json, print_table
    from train.networks import load_actor

    if getattr(args, "quantize", None) not in (None, "float32", "none"):
        raise ExportRefused("--format c writes float32 weights only; drop --quantize")
    run = Path(args.run)
    actor, spec, _config = load_actor(run, getattr(args, "which", "best") or "best")
    vehicle = load_vehicle(spec.vehicle)
    if getattr(args, "no_battery_compensation", False):
        if vehicle.command_path is None:
            raise ExportRefused(f"--no-battery-compensation: vehicle {vehicle.id!r} has no Crazyflie firmware "
                                "command path whose compensation could be off")
        vehicle = vehicle.with_battery_compensation(False)
    out = Path(args.out)
    text, figures = render_header(actor, spec, vehicle, source=str(run))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    figures["out"] = str(out)
    print_table("quadhil export --format c", [
        ("vehicle", figures["vehicle"]), ("action mode", figures["action_mode"]),
        ("layers", " -> ".join(f"{i}x{o} {a}" for i, o, a in figures["layers"])),
        ("parameters", figures["parameters"]), ("weight bytes", figures["weight_bytes"]),
        ("firmware battery compensation", "on" if figures["battery_compensated"] else "off: the app compensates"),
        ("crazyflie app accepts it", figures["crazyflie_app_accepts"]), ("written", str(out))])
    if not figures["crazyflie_app_accepts"]:
        print(f"note: the Crazyflie app refuses this network: {figures['crazyflie_app_refusal']}")
    if getattr(args, "json", False):
        emit_json(figures)
    return 0
