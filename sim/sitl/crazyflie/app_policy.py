"""The Crazyflie twin's side of quadhil's onboard app, mode 2 (onboard policy), running the app's own C.

``firmware_bridge/crazyflie_app/src/quadhil_nn.c`` (observation builder, forward pass, action to
PWM-ratio mapping) is compiled for this host with gcc against one ``policy_weights.h`` (written by
``quadhil export RUN --format c``) into a shared library, loaded through ctypes and called from the
twin's 1 kHz loop: no second implementation of the network, no process boundary in the loop.

What this module mirrors of ``firmware_bridge/crazyflie_app/src/quadhil_app.c`` (runPolicy,
policyAcceptable, applyActions, appMain's feedCommander; the state lives in the relay's
:class:`sim.sitl.crazyflie.app_relay.RelayState`, as the app keeps both modes in one set of
statics):

* ``policyAcceptable``: the embedded network must be for vehicle ``crazyflie``, motor-level, at an
  integer rate dividing the 1 kHz main loop, with at most 8 past actions. Otherwise: motors off,
  state ``refused`` (one STATUS packet), every tick. The committed placeholder weights
  (vehicle ``"none: ..."``) are refused, as on a fresh build of the app;
* the policy runs on ticks where ``RATE_DO_EXECUTE(rate, step)`` holds (step % (1000 / rate) == 0,
  crazyflie-firmware src/modules/interface/stabilizer_types.h); between them the motors keep the
  last forces;
* on its first tick: the action history starts at the hover action, the target is the estimated
  position unless a SETPOINT packet already set one, state ``policy`` event ``started``;
* the observation comes from the state estimate (position, velocity, attitude quaternion) and the
  gyro (deg/s in ``sensorData_t``, times 0.0174532925 as the app does), here the twin's estimate and
  its low-passed 1 kHz gyro (what the twin's PID controller sees too);
* the position-error integral (layout ``integral``; m*s, world ENU, float32 as in the app) is zeroed
  on the first tick and advanced by the app's ``qh_integrate_position_error`` once per policy tick,
  from that tick's estimate and target, before ``qh_observe`` reads it (``RelayState.position_integral``);
* a non-finite action: motors off for that tick, nothing else changes;
* the action goes through ``qh_action_to_pwm_ratio`` (``control_t.normalizedForces``), and from
  there through the same path the relay uses (``Vehicle.command_to_thrust``,
  ``twin.set_motor_override``);
* while flying, the commander is fed a neutral setpoint every 100 ms, so the supervisor's commander
  watchdog never levels out or locks a vehicle flown by the app; the app's own link watchdog
  (followLink) replaces it: once the policy runs, without a valid app-channel packet of any kind for
  ``quadhil.lossMs`` (default 500 ms, 0 = off) the state becomes ``link_lost`` (event ``watchdog``,
  ``wdTrips`` + 1, one STATUS); the target's z first drops to the estimate's if it was higher, then
  sinks by 0.3 m/s / rate each policy tick while the policy keeps flying and the feed goes on; when
  the estimate's z is below 0.05 m, or the target has been more than 0.3 m below it for 1 s, the
  motors are cut and stay off (state ``link_lost``, no more feed) until ``quadhil.enable`` = 0. A
  valid SETPOINT before the cut resumes: state ``policy``, event ``resumed``, the packet's target.

gcc missing: :class:`sim.errors.QuadhilError` naming it, when weights were asked for
(``TwinConfig.app_policy`` / ``quadhil sitl crazyflie --app-policy``); with the default placeholder
the twin still runs (mode 1 needs no C) and mode 2 refuses, with the reason in
``RelayState.policy_error``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.errors import QuadhilError
from sim.sitl import app_channel as ac

APP_SRC = Path(__file__).resolve().parents[3] / "firmware_bridge" / "crazyflie_app" / "src"
PLACEHOLDER_WEIGHTS = APP_SRC / "policy_weights.h"
# the app's own build flags for the portable C (tests/firmware_bridge/onboard_support.HOST_CFLAGS)
# plus what a shared library needs
HOST_CFLAGS = ("-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared")
FEED_PERIOD_S = 0.1  # quadhil_app.c appMain: feedCommander every 100 ms while the policy flies
LOSS_DESCENT_MPS = np.float32(0.3)  # quadhil_app.c QH_LOSS_DESCENT_MPS (its why is there)
LOSS_GROUND_Z_M = 0.05  # QH_LOSS_GROUND_Z_M
LOSS_STUCK_GAP_M = 0.3  # QH_LOSS_STUCK_GAP_M
LOSS_STUCK_S = 1.0  # QH_LOSS_STUCK_MS
DEG2RAD_F32 = np.float32(0.0174532925)  # quadhil_app.c runPolicy


class QhState(ctypes.Structure):
    """``qh_state_t`` of quadhil_nn.h: world ENU m, m/s; quaternion w,x,y,z body-to-world; rad/s FLU."""

    _fields_ = [("pos_w", ctypes.c_float * 3), ("vel_w", ctypes.c_float * 3),
                ("quat_wb", ctypes.c_float * 4), ("omega_b", ctypes.c_float * 3)]


def _cache_dir() -> Path:
    d = Path(os.environ.get("QUADHIL_APP_POLICY_CACHE", Path(tempfile.gettempdir()) / "quadhil-app-policy"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def build_library(weights_h: Path) -> Path:
    """Compile quadhil_nn.c with ``weights_h`` as its policy_weights.h into a shared library for this
    host; return its path. Cached by the content of the sources, the weights and the flags, so a
    twin pays gcc once per policy. Raises QuadhilError when gcc is missing or the build fails."""
    weights_h = Path(weights_h)
    if not weights_h.is_file():
        raise QuadhilError(f"app policy weights {weights_h} not found (write them with "
                           "`quadhil export RUN --format c --out FILE.h`)")
    nn_c, nn_h = APP_SRC / "quadhil_nn.c", APP_SRC / "quadhil_nn.h"
    if not nn_c.is_file():
        raise QuadhilError(f"the app's C source {nn_c} is not there (a source checkout of quadhil is needed)")
    text = weights_h.read_bytes()
    key = hashlib.sha256(b"\0".join([nn_c.read_bytes(), nn_h.read_bytes(), text, " ".join(HOST_CFLAGS).encode()]))
    lib = _cache_dir() / f"quadhil_nn-{key.hexdigest()[:20]}.so"
    if lib.is_file():
        return lib
    gcc = shutil.which("gcc")
    if gcc is None:
        raise QuadhilError("gcc not found: the twin runs the onboard app's policy (mode 2) as the app's own C "
                           "(quadhil_nn.c) built for this host; install gcc (Debian: apt-get install gcc)")
    with tempfile.TemporaryDirectory(prefix="quadhil-app-policy-") as tmp:
        # quadhil_nn.c includes "policy_weights.h": a quoted include looks in the including file's
        # directory first, so a copy next to these weights finds them and not the app's placeholder
        stage = Path(tmp)
        shutil.copyfile(nn_c, stage / "quadhil_nn.c")
        (stage / "policy_weights.h").write_bytes(text)
        out = stage / lib.name
        cmd = [gcc, *HOST_CFLAGS, f"-I{stage}", f"-I{APP_SRC}", str(stage / "quadhil_nn.c"), "-o", str(out), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise QuadhilError(f"building the app policy from {weights_h} failed: {' '.join(cmd)}\n{proc.stderr}")
        os.replace(out, lib)  # atomic: parallel twins never load a half-written library
    return lib


@dataclass
class CPolicy:
    """quadhil_nn.c with one policy_weights.h, loaded through ctypes."""

    weights_h: Path
    library: Path
    vehicle: str
    motor_level: bool
    for_crazyflie: bool
    rate_hz: float
    obs_dim: int
    action_history: int
    hover_action: np.ndarray  # (4,) the history's starting value
    _lib: ctypes.PyDLL

    @classmethod
    def load(cls, weights_h: Path) -> "CPolicy":
        """Build (or take from the cache) and load the library for ``weights_h``."""
        path = build_library(Path(weights_h))
        # PyDLL keeps the GIL during a call: qh_forward's buffers are static, and two twins in one
        # process (threads) must not run it at once
        lib = ctypes.PyDLL(str(path))
        f32p = ctypes.POINTER(ctypes.c_float)
        lib.qh_observe.argtypes = [ctypes.POINTER(QhState), f32p, f32p, f32p, f32p]
        lib.qh_observe.restype = ctypes.c_int
        lib.qh_integrate_position_error.argtypes = [f32p, f32p, f32p]
        lib.qh_integrate_position_error.restype = None
        lib.qh_forward.argtypes = [f32p, f32p]
        lib.qh_forward.restype = None
        lib.qh_action_to_pwm_ratio.argtypes = [ctypes.c_float, ctypes.c_float]
        lib.qh_action_to_pwm_ratio.restype = ctypes.c_float
        lib.qh_policy_vehicle.restype = ctypes.c_char_p
        lib.qh_policy_is_for_crazyflie.restype = ctypes.c_bool
        lib.qh_policy_is_motor_level.restype = ctypes.c_bool
        lib.qh_policy_rate_hz.restype = ctypes.c_float
        lib.qh_policy_obs_dim.restype = ctypes.c_int
        lib.qh_policy_action_history.restype = ctypes.c_int
        lib.qh_policy_hover_action.restype = f32p
        hover = np.ctypeslib.as_array(lib.qh_policy_hover_action(), shape=(4,)).copy()
        return cls(Path(weights_h), path, lib.qh_policy_vehicle().decode(), bool(lib.qh_policy_is_motor_level()),
                   bool(lib.qh_policy_is_for_crazyflie()), float(lib.qh_policy_rate_hz()),
                   int(lib.qh_policy_obs_dim()), int(lib.qh_policy_action_history()), hover, lib)

    def acceptable(self) -> bool:
        """quadhil_app.c policyAcceptable, on what the compiled weights report."""
        return ac.policy_refusal("crazyflie" if self.for_crazyflie else self.vehicle,
                                 "motors" if self.motor_level else "ctbr", self.rate_hz, self.action_history) is None

    def refusal(self) -> str:
        """The app's console line for a refused network (quadhil_app.c runPolicy)."""
        return (f"refusing policy for '{self.vehicle}' ({'motors' if self.motor_level else 'ctbr'}, "
                f"{int(self.rate_hz)} Hz): need crazyflie, motors, a divisor of 1000 Hz")

    def integrate(self, integral_w: np.ndarray, pos_w, target_w) -> np.ndarray:
        """qh_integrate_position_error: the (3,) float32 integral (m*s, world ENU) one policy tick on,
        from the estimate ``pos_w`` and ``target_w`` (m, world ENU). Returns a new array."""
        out = np.array(integral_w, dtype=np.float32).reshape(3)
        pos = np.ascontiguousarray(pos_w, dtype=np.float32)
        target = np.ascontiguousarray(target_w, dtype=np.float32)
        f32p = ctypes.POINTER(ctypes.c_float)
        self._lib.qh_integrate_position_error(out.ctypes.data_as(f32p), pos.ctypes.data_as(f32p),
                                              target.ctypes.data_as(f32p))
        return out

    def observe(self, pos_w, vel_w, quat_wb, omega_b, target_w, history: np.ndarray,
                integral_w: np.ndarray) -> np.ndarray:
        """qh_observe: the raw observation (float32) of one state (m, m/s ENU; w,x,y,z; rad/s FLU), with
        the action history and the position-error integral (m*s, already advanced for this tick)."""
        s = QhState((ctypes.c_float * 3)(*pos_w), (ctypes.c_float * 3)(*vel_w), (ctypes.c_float * 4)(*quat_wb),
                    (ctypes.c_float * 3)(*omega_b))
        target = np.ascontiguousarray(target_w, dtype=np.float32)
        hist = np.ascontiguousarray(history, dtype=np.float32)
        if hist.size == 0:
            hist = np.zeros(4, dtype=np.float32)
        integral = np.ascontiguousarray(integral_w, dtype=np.float32)
        obs = np.zeros(max(self.obs_dim, 1), dtype=np.float32)
        f32p = ctypes.POINTER(ctypes.c_float)
        n = self._lib.qh_observe(ctypes.byref(s), target.ctypes.data_as(f32p), hist.ctypes.data_as(f32p),
                                 integral.ctypes.data_as(f32p), obs.ctypes.data_as(f32p))
        if n != self.obs_dim:
            raise QuadhilError(f"qh_observe wrote {n} values, the weights say {self.obs_dim}")
        return obs

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """qh_forward: four actions in [-1, 1] (float32) for one raw observation."""
        x = np.ascontiguousarray(obs, dtype=np.float32)
        out = np.zeros(4, dtype=np.float32)
        f32p = ctypes.POINTER(ctypes.c_float)
        self._lib.qh_forward(x.ctypes.data_as(f32p), out.ctypes.data_as(f32p))
        return out

    def pwm_ratio(self, action: np.ndarray, thrust_scale: float) -> np.ndarray:
        """qh_action_to_pwm_ratio per motor: control_t.normalizedForces in [0, 1]."""
        return np.array([self._lib.qh_action_to_pwm_ratio(float(a), float(thrust_scale)) for a in action])


def load_for_twin(twin, rs) -> None:
    """Load the weights the twin was configured with (``twin.config.app_policy``; QuadhilError when
    that fails), else the app's committed placeholder (a failure is kept in ``rs.policy_error`` and
    mode 2 refuses). Called once when the twin boots, outside the real-time loop."""
    configured = getattr(getattr(twin, "config", None), "app_policy", None)
    if configured:
        rs.policy = CPolicy.load(Path(configured))
        return
    try:
        rs.policy = CPolicy.load(PLACEHOLDER_WEIGHTS)
    except QuadhilError as exc:
        rs.policy, rs.policy_error = None, str(exc)


def tick(twin, rs, set_state, feed_commander) -> None:
    """The app's controller in mode 2 (runPolicy) for the 1 kHz twin tick ``twin.ticks``, plus
    appMain's 100 ms commander feed. ``set_state(state, event)`` reports like the app's setState."""
    from sim.sitl.crazyflie.app_relay import motors_off

    rs.overriding = True
    policy = rs.policy
    if policy is None or not policy.acceptable():
        if rs.state != ac.AppState.REFUSED:
            rs.last_error = rs.policy_error if policy is None else policy.refusal()
        motors_off(twin, rs)
        set_state(ac.AppState.REFUSED, ac.AppEvent.NONE)
        return
    if rs.loss_cut:
        motors_off(twin, rs)  # landed after a link loss: only quadhil.enable = 0 lets the motors run
        return
    step = int(twin.ticks)
    if step % (ac.MAIN_LOOP_HZ // int(policy.rate_hz)) == 0:
        _run_policy(twin, rs, policy, set_state)
    now_s = float(twin.now_s())
    # the feed goes on during a link-loss descent (the supervisor must not cut it) and stops after the cut
    flying = rs.state == ac.AppState.POLICY or (rs.state == ac.AppState.LINK_LOST and not rs.loss_cut)
    if flying and (rs.last_feed_s is None or now_s - rs.last_feed_s >= FEED_PERIOD_S):
        rs.last_feed_s = now_s
        feed_commander(twin)


def _follow_link(twin, rs, policy: CPolicy, set_state) -> bool:
    """quadhil_app.c followLink, once per policy tick: mode 2's link watchdog. False when the motors
    must be cut (landed after a link loss)."""

    now_s = float(twin.now_s())
    z_m = float(twin.est_pos[2])
    if rs.state == ac.AppState.LINK_LOST:
        if rs.setpoints_accepted != rs.loss_setpoints:  # a SETPOINT during the descent: its target stands
            rs.loss_stuck_since_s = None
            set_state(ac.AppState.POLICY, ac.AppEvent.RESUMED)
            return True
        # the app's float target: one float32 subtraction per tick
        rs.target_w[2] = float(np.float32(rs.target_w[2]) - LOSS_DESCENT_MPS / np.float32(policy.rate_hz))
    else:
        # whole microseconds, as the relay's watchdog: 1 ms twin ticks compare exactly
        age_us = round((now_s - rs.link_rx_s) * 1e6)
        if rs.loss_ms > 0 and age_us >= round(rs.loss_ms * 1e3):
            rs.watchdog_trips += 1
            rs.loss_times_s.append(now_s)
            rs.loss_trip_z_m = z_m
            rs.loss_setpoints = rs.setpoints_accepted
            rs.loss_stuck_since_s = None
            rs.target_w[2] = min(float(rs.target_w[2]), z_m)  # never climb on a lost link
            set_state(ac.AppState.LINK_LOST, ac.AppEvent.WATCHDOG)
        return True
    if rs.target_w[2] < z_m - LOSS_STUCK_GAP_M:
        if rs.loss_stuck_since_s is None:
            rs.loss_stuck_since_s = now_s
    else:
        rs.loss_stuck_since_s = None
    stuck = rs.loss_stuck_since_s is not None and round((now_s - rs.loss_stuck_since_s) * 1e6) >= LOSS_STUCK_S * 1e6
    if z_m < LOSS_GROUND_Z_M or stuck:
        rs.loss_cut, rs.loss_cut_s = True, now_s
        return False
    return True


def _run_policy(twin, rs, policy: CPolicy, set_state) -> None:
    from sim.sitl.crazyflie.app_relay import motors_off

    if not rs.policy_started:
        rs.history = np.tile(policy.hover_action, policy.action_history).astype(np.float32)
        rs.position_integral = np.zeros(3, dtype=np.float32)
        if rs.target_w is None:
            rs.target_w = np.asarray(twin.est_pos, dtype=np.float64).copy()
        rs.policy_started = True
        rs.policy_ticks = 0
        rs.link_rx_s = float(twin.now_s())  # the link watchdog counts from the start
        set_state(ac.AppState.POLICY, ac.AppEvent.STARTED)
    if not _follow_link(twin, rs, policy, set_state):
        motors_off(twin, rs)
        return
    qx, qy, qz, qw = twin.est_quat_xyzw
    gyro_dps = np.degrees(np.asarray(getattr(twin, "filtered_omega_b", twin.est_omega_b)).reshape(3)).astype(np.float32)
    omega_b = gyro_dps * DEG2RAD_F32
    rs.position_integral = policy.integrate(rs.position_integral, twin.est_pos, rs.target_w)
    obs = policy.observe(twin.est_pos, twin.est_vel, (qw, qx, qy, qz), omega_b, rs.target_w, rs.history,
                         rs.position_integral)
    # what this tick saw, for inspection: (pos, vel, quat wxyz, omega rad/s, target, history), obs
    rs.last_inputs = (list(twin.est_pos), list(twin.est_vel), (qw, qx, qy, qz), omega_b.copy(),
                      np.array(rs.target_w, dtype=np.float64), rs.history.copy())
    rs.last_obs = obs
    action = policy.forward(obs)
    rs.policy_ticks += 1
    if not np.all(np.isfinite(action)):
        motors_off(twin, rs)
        return
    if policy.action_history > 0:  # newest first, as sim.contract.push_action_history
        rs.history = np.concatenate([action, rs.history[:-4]]).astype(np.float32)
    rs.last_action = action.copy()
    rs.pwm_ratio = policy.pwm_ratio(action, rs.thrust_scale)
    twin.set_motor_override(twin.vehicle.command_to_thrust(rs.pwm_ratio))
