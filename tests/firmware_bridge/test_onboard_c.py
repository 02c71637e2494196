"""The Crazyflie app's portable C, built for the host: its forward pass is the .tflite's, its
observation is sim.contract.observe's (the position-error integral of layout "integral" included,
tick by tick), its motor mapping is the vehicle's thrust curve, and the Cortex-M4 build of the
default actor fits in 32 KB of flash."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.firmware_bridge.onboard_support import APP, ARM_CFLAGS, build, tflite_act_fn

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed: host C build skipped")

N = 10_000


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.mktemp("onboard_c"))


@pytest.fixture(scope="module")
def tflite(built):
    from deploy.export import convert

    return convert(built.actor, "none")


def test_forward_pass_matches_the_tflite_on_10000_visited_observations(built, tflite):
    from train.evaluate import collect_observations

    act_small = tflite_act_fn(tflite, built.spec.obs_dim, 64)
    obs = collect_observations(act_small, built.spec, built.vehicle.id, N, seed=1)
    assert obs.shape == (N, built.spec.obs_dim)
    ref = tflite_act_fn(tflite, built.spec.obs_dim, N)(obs)
    out = np.frombuffer(built.run("forward", str(N), data=obs.astype(np.float32).tobytes()), dtype=np.float32)
    out = out.reshape(N, 4)
    diff = float(np.max(np.abs(out - ref)))
    print(f"max |C - tflite| over {N} visited observations: {diff:.3g}")
    assert diff <= 1e-5


def _random_states(n: int, rng: np.random.Generator, h: int):
    pos = rng.uniform(-3, 3, (n, 3))
    vel = rng.uniform(-3, 3, (n, 3))
    quat = rng.normal(size=(n, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    omega = rng.uniform(-10, 10, (n, 3))
    target = rng.uniform(-1, 2, (n, 3))
    last = rng.uniform(-1, 1, (n, 4 * h))
    return pos, vel, quat, omega, target, last


def test_observation_builder_matches_contract_observe_on_10000_states(built):
    from sim.contract import observe

    spec = built.spec
    pos, vel, quat, omega, target, last = _random_states(N, np.random.default_rng(2), spec.action_history)
    records = np.concatenate([pos, vel, quat, omega, target, last], axis=1).astype(np.float32)
    out = np.frombuffer(built.run("observe", str(N), data=records.tobytes()), dtype=np.float32).reshape(N, -1)
    # the contract sees the same float32 inputs the C code sees
    f = records.astype(np.float64)
    ref = observe(f[:, 0:3], f[:, 3:6], f[:, 6:10], f[:, 10:13], f[:, 13:16], f[:, 16:], spec)
    assert out.shape == ref.shape
    diff = float(np.max(np.abs(out - ref)))
    print(f"max |C observe - sim.contract.observe| over {N} states: {diff:.3g}")
    assert diff <= 1e-5
    clipped = np.abs(f[:, 0:3] - f[:, 13:16]) > spec.position_error_clip_m
    assert clipped.any(), "the states must exercise the position-error clip"


def test_motor_mapping_inverts_the_vehicles_thrust_curve(built):
    actions = np.linspace(-1.2, 1.2, 241).astype(np.float32)
    for scale in ("1.0", "0.8"):
        out = np.frombuffer(built.run("pwm", str(actions.size), scale, data=actions.tobytes()), dtype=np.float32)
        thrust = 0.5 * (np.clip(actions, -1, 1) + 1.0) * built.spec.thrust_max_n * float(scale)
        ref = built.vehicle.thrust_to_command(thrust)
        assert np.max(np.abs(out - ref)) <= 1e-5
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_on_a_build_without_compensation_the_app_scales_pwm_by_the_curves_voltage_over_pm_vbat(built, tmp_path):
    from deploy.export_c import render_header
    from sim.command_path import app_battery_compensation
    from tests.firmware_bridge.onboard_support import compile_harness

    off = built.vehicle.with_battery_compensation(False)
    text, _ = render_header(built.actor, built.spec, off)
    assert "#define QH_BATTERY_COMPENSATED 0" in text
    supply_v = float(re.search(r"#define QH_THRUST_CURVE_SUPPLY_V ([0-9.]+)f", text).group(1))
    assert supply_v == pytest.approx(off.battery.voltage_full_v)  # 4.2 V, the full cell
    harness = compile_harness(tmp_path, text)
    actions = np.linspace(-1.0, 1.0, 201).astype(np.float32)
    thrust = 0.5 * (actions.astype(np.float64) + 1.0) * built.spec.thrust_max_n
    for vbat_v in (4.2, 3.9, 3.6, 1.5):
        proc = subprocess.run([str(harness), "pwm", str(actions.size), "1.0", str(vbat_v)], input=actions.tobytes(),
                              capture_output=True, timeout=60, check=True)
        out = np.frombuffer(proc.stdout, dtype=np.float32)
        scale = 4.2 / vbat_v if vbat_v >= 2.0 else 1.0  # below 2 V: not a battery, no compensation
        ref = np.clip(off.thrust_to_command(thrust) * scale, 0.0, 1.0)
        assert np.max(np.abs(out - ref)) <= 1e-5
        if vbat_v >= 2.0:  # the simulator's model of the same app (sim.command_path), as PWM
            sim_pwm = off.pwm_for_thrust(app_battery_compensation(
                np.repeat(thrust[:, None], 4, axis=1), np.zeros(actions.size, dtype=bool),
                np.full(actions.size, (vbat_v / 4.2) ** 2), np.ones(actions.size), built.vehicle))[:, 0]
            assert np.max(np.abs(out - sim_pwm)) <= 1e-4
    assert out.max() <= 1.0


def test_policy_header_tells_the_app_what_the_network_is_for(built, tmp_path):
    vehicle, motor_level, rate, dim, for_cf = built.run("info").decode().split()
    assert (vehicle, motor_level, float(rate), int(dim), for_cf) == ("crazyflie", "1", 100.0, built.spec.obs_dim, "1")
    x500 = build(tmp_path, vehicle_id="x500")
    vehicle, _, _, _, for_cf = x500.run("info").decode().split()
    assert (vehicle, for_cf) == ("x500", "0"), "the app's refusal check must see an x500 network as not for it"


def _arm_gcc():
    return shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")


@pytest.mark.skipif(_arm_gcc()[0] is None,
                    reason="arm-none-eabi-gcc not installed (Debian: apt-get install gcc-arm-none-eabi): "
                           "Cortex-M4 cross-compile and flash-size check skipped")
def test_cortex_m4_build_of_the_default_actor_fits_in_32_kb_of_flash(built):
    gcc, size = _arm_gcc()
    obj = built.workdir / "quadhil_nn.o"
    nn_c = built.workdir / "quadhil_nn.c"  # staged next to the generated policy_weights.h
    cmd = [gcc, *ARM_CFLAGS, f"-I{built.workdir}", f"-I{APP / 'src'}", "-c", str(nn_c), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    objs = [obj]
    out = subprocess.run([size, *map(str, objs)], capture_output=True, text=True, timeout=30).stdout
    text, data, bss = (int(x) for x in out.splitlines()[1].split()[:3])
    print(f"Cortex-M4 quadhil_nn.o: text {text} B, data {data} B, bss {bss} B (flash {text + data} B)")
    assert text + data <= 32 * 1024
    # linked with newlib's libm (tanhf), minus an empty program: what the policy adds to a firmware image
    link = [gcc, *ARM_CFLAGS, "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
            "-ffunction-sections", "-fdata-sections", f"-I{built.workdir}", f"-I{APP / 'src'}"]
    main_c, base_c = built.workdir / "main_arm.c", built.workdir / "base_arm.c"
    main_c.write_text('#include "quadhil_nn.h"\nvolatile float in_[QH_OBS_DIM_MAX], out_[4];\nint main(void) {\n'
                      '  float o[QH_OBS_DIM_MAX], a[4];\n  for (int i = 0; i < QH_OBS_DIM_MAX; i++) o[i] = in_[i];\n'
                      '  qh_forward(o, a);\n  for (int i = 0; i < 4; i++) out_[i] = a[i];\n  return 0;\n}\n')
    base_c.write_text("volatile float in_[64], out_[4];\nint main(void) {\n  out_[0] = in_[0];\n  return 0;\n}\n")
    full = subprocess.run([*link, str(nn_c), str(main_c), "-o", str(built.workdir / "full.elf"), "-lm"],
                          capture_output=True, text=True, timeout=120)
    base = subprocess.run([*link, str(base_c), "-o", str(built.workdir / "base.elf")], capture_output=True, text=True,
                          timeout=120)
    if full.returncode == 0 and base.returncode == 0:
        sizes = subprocess.run([size, str(built.workdir / "full.elf"), str(built.workdir / "base.elf")],
                               capture_output=True, text=True, timeout=30).stdout.splitlines()[1:]
        (ft, fd, _), (bt, bd, _) = ([int(x) for x in line.split()[:3]] for line in sizes)
        print(f"Cortex-M4 linked with libm (tanhf): policy adds {ft + fd - bt - bd} B of flash")
        assert ft + fd - bt - bd <= 32 * 1024
    else:
        print(f"(link with newlib skipped: {full.stderr.strip()[:200] or base.stderr.strip()[:200]})")


def test_the_committed_placeholder_builds_and_the_app_refuses_to_fly_it(tmp_path):
    from tests.firmware_bridge.onboard_support import compile_harness

    header = (APP / "src" / "policy_weights.h").read_text()
    harness = compile_harness(tmp_path, header)
    out = subprocess.run([str(harness), "info"], capture_output=True, text=True, timeout=30).stdout.split()
    assert out[-1] == "0", "the placeholder must not pass the app's is-for-crazyflie check"


def test_app_source_compiles_against_the_firmware_prototypes(tmp_path):
    """quadhil_app.c with -Wall -Wextra -Wdouble-promotion -Werror against stub headers carrying
    crazyflie-firmware's prototypes (tests/firmware_bridge/cf_stubs); for the Cortex-M4 too when
    arm-none-eabi-gcc is installed. Not a firmware build: that needs a crazyflie-firmware checkout."""
    from pathlib import Path

    stubs = Path(__file__).parent / "cf_stubs"
    # CONFIG_CONTROLLER_OOT: the app-config's setting, which kbuild hands every file through autoconf.h
    flags = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wdouble-promotion", "-Werror", "-DCONFIG_CONTROLLER_OOT=1",
             f"-I{stubs}",
             f"-I{APP / 'src'}", "-c", str(APP / "src" / "quadhil_app.c")]
    compilers = [(shutil.which("gcc"), [])]
    arm = _arm_gcc()[0]
    if arm is not None:
        compilers.append((arm, ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]))
    for i, (cc, extra) in enumerate(compilers):
        proc = subprocess.run([cc, *extra, *flags, "-o", str(tmp_path / f"app{i}.o")], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, f"{cc}: {proc.stderr}"


# ---------------------------------------------------------------------- layout "integral"

INTEGRAL_HISTORY = 3


@pytest.fixture(scope="module")
def built_integral(tmp_path_factory):
    return build(tmp_path_factory.mktemp("onboard_c_integral"), layout="integral",
                 action_history=INTEGRAL_HISTORY)


def _flight_through_the_radius(rng: np.random.Generator, h: int):
    """Consecutive ticks of one flight (pos, vel, quat, omega, target, last actions), world ENU: a
    stretch held off the target inside the integral's radius long enough to reach its clip, one far
    outside it (beyond the position-error clip too), one held off the other way long enough to reach
    the opposite clip, then a moving target hopping in and out of the radius. No tick lies within
    0.02 m of the radius, where float32 and float64 might disagree on which side it is."""
    from sim.contract import INTEGRAL_RADIUS_M as R

    def around(n: int, lo: float, hi: float) -> np.ndarray:
        d = rng.normal(size=(n, 3))
        return d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(lo, hi, (n, 1))

    hop = rng.uniform(0, 1, (400, 1)) < 0.6
    offsets = np.concatenate([
        np.tile([0.2, -0.12, 0.08], (300, 1)) + rng.normal(0, 0.005, (300, 3)),
        around(100, R + 0.2, 2.5),
        np.tile([-0.22, 0.12, -0.08], (600, 1)) + rng.normal(0, 0.005, (600, 3)),
        np.where(hop, around(400, 0.0, R - 0.02), around(400, R + 0.02, 2 * R)),
    ])
    n = offsets.shape[0]
    target = np.array([0.3, -0.2, 1.0]) + np.cumsum(rng.normal(0, 0.002, (n, 3)), axis=0)
    _, vel, quat, omega, _, last = _random_states(n, rng, h)
    return target + offsets, vel, quat, omega, target, last


def test_the_integral_and_its_observation_match_the_contract_tick_by_tick_through_radius_and_clip(built_integral):
    """The app's float32 integral (qh_integrate_position_error, zero at the start, advanced once per
    tick before qh_observe) is sim.contract.integrate_position_error's over 1,400 ticks that leave
    the radius, come back, and run into the clip on both sides; the whole observation is
    sim.contract.observe's with that integral."""
    from sim.contract import INTEGRAL_LIMIT_M_S, INTEGRAL_RADIUS_M, integrate_position_error, observe

    spec = built_integral.spec
    assert spec.layout == "integral" and spec.action_history == INTEGRAL_HISTORY
    pos, vel, quat, omega, target, last = _flight_through_the_radius(np.random.default_rng(3), spec.action_history)
    records = np.concatenate([pos, vel, quat, omega, target, last], axis=1).astype(np.float32)
    n = records.shape[0]
    out = np.frombuffer(built_integral.run("observe", str(n), data=records.tobytes()), dtype=np.float32).reshape(n, -1)
    f = records.astype(np.float64)  # the contract sees the same float32 inputs the C code sees
    integral = np.zeros((1, 3))
    integrals = np.empty((n, 3))
    for k in range(n):
        integral = integrate_position_error(integral, f[k:k + 1, 0:3], f[k, 13:16], spec)
        integrals[k] = integral[0]
    ref = observe(f[:, 0:3], f[:, 3:6], f[:, 6:10], f[:, 10:13], f[:, 13:16], f[:, 16:], spec,
                  position_error_integral=integrals)
    sl = spec.obs_slice("position_error_integral_w")
    diff = float(np.max(np.abs(out - ref)))
    print(f"max |C - sim.contract| over {n} ticks: observation {diff:.3g}, "
          f"integral {float(np.max(np.abs(out[:, sl] - integrals))):.3g}")
    assert out.shape == ref.shape and diff <= 1e-5
    distance = np.linalg.norm(f[:, 0:3] - f[:, 13:16], axis=1)
    assert np.min(np.abs(distance - INTEGRAL_RADIUS_M)) > 1e-3, "no tick so close to the radius that rounding decides"
    outside = distance >= INTEGRAL_RADIUS_M
    assert outside.sum() >= 100 and np.all(integrals[1:][outside[1:]] == integrals[:-1][outside[1:]]), \
        "outside the radius the integral holds"
    for side in (1.0, -1.0):
        assert np.any(integrals == side * INTEGRAL_LIMIT_M_S), f"the ticks must reach the clip at {side:+g} x limit"
        assert np.any(out[:, sl] == np.float32(side * INTEGRAL_LIMIT_M_S)), "and the C integral stops there too"


def test_the_forward_pass_of_an_integral_network_matches_the_tflite(built_integral):
    """On observations the network visits, and on integrals across the whole clip range (a hover
    that held an offset for seconds)."""
    from deploy.export import convert
    from sim.contract import INTEGRAL_LIMIT_M_S
    from train.evaluate import collect_observations

    spec = built_integral.spec
    tflite = convert(built_integral.actor, "none")
    n = 2_000
    obs = collect_observations(tflite_act_fn(tflite, spec.obs_dim, 64), spec, built_integral.vehicle.id, n, seed=4)
    held = obs.copy()
    held[:, spec.obs_slice("position_error_integral_w")] = np.random.default_rng(5).uniform(
        -INTEGRAL_LIMIT_M_S, INTEGRAL_LIMIT_M_S, (n, 3))
    obs = np.concatenate([obs, held]).astype(np.float32)
    ref = tflite_act_fn(tflite, spec.obs_dim, 2 * n)(obs)
    out = np.frombuffer(built_integral.run("forward", str(2 * n), data=obs.tobytes()), dtype=np.float32)
    diff = float(np.max(np.abs(out.reshape(2 * n, 4) - ref)))
    print(f"max |C - tflite| over {2 * n} integral-layout observations: {diff:.3g}")
    assert diff <= 1e-5


def test_the_export_writes_the_integral_field_and_its_constants_from_the_contract(built_integral):
    from deploy.export_c import FIELD_IDS, _c_float, render_header
    from sim.contract import INTEGRAL_LIMIT_M_S, INTEGRAL_RADIUS_M

    text, figures = render_header(built_integral.actor, built_integral.spec, built_integral.vehicle)
    assert f"{{{FIELD_IDS['position_error_integral_w']}u, 3u}},  /* position_error_integral_w */" in text
    assert "#define QH_POSITION_INTEGRAL 1" in text
    assert f"#define QH_INTEGRAL_RADIUS_M {_c_float(INTEGRAL_RADIUS_M)}" in text
    assert f"#define QH_INTEGRAL_LIMIT_M_S {_c_float(INTEGRAL_LIMIT_M_S)}" in text
    assert figures["crazyflie_app_accepts"] is True


def test_a_network_without_the_integral_gets_no_integral_defines(built):
    from deploy.export_c import render_header

    text, _ = render_header(built.actor, built.spec, built.vehicle)
    assert "QH_POSITION_INTEGRAL" not in text and "QH_INTEGRAL_" not in text, \
        "a default-layout header reads as it did before the integral had a C builder"


def test_an_observation_field_the_c_builder_does_not_know_is_refused(built_integral):
    """The app builds the observation itself; a field it has no builder for must stop the export,
    not reach the vehicle half-built."""
    import dataclasses

    from deploy.export_c import ExportRefused, render_header
    from sim.contract import ObsField, default_observation

    spec = built_integral.spec
    unknown = default_observation(spec.action_history) + (ObsField("wind_estimate_w", 3, "m/s"),)
    with pytest.raises(ExportRefused, match="'wind_estimate_w' has no C builder"):
        render_header(built_integral.actor, dataclasses.replace(spec, observation=unknown), built_integral.vehicle)
