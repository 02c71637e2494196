"""PX4's ``mc_nn_control`` as a controller of the PX4 twin (``--controller mc_nn:DIR/control_net.npz``).

What it mirrors (PX4-Autopilot src/modules/mc_nn_control/):

* ``PopulateInputTensor``: 15 inputs [setpoint - position, R row 0, R row 1, velocity, body
  rates] in ENU/FLU. The twin's estimate is already ENU/FLU (PX4 rotates its NED/FRD estimate
  into these frames; tests/firmware_bridge/test_onboard_px4nn.py checks the two agree).
* the setpoint: the offboard trajectory setpoint's position when finite, else the position
  latched when the controller took over (``reset_trajectory_setpoint``).
* the network: the exported control_net.tflite's FullyConnected(+ReLU) layers, evaluated here
  in numpy from ``control_net.npz`` (written next to it by ``quadhil export --format px4-nn``):
  sim/ must not import TensorFlow or LiteRT (DESIGN.md), and these are the same float32
  multiply-adds TFLM's reference FullyConnected kernel does. A test checks npz == tflite.
* ``RescaleActions`` (inline in mc_nn_control.cpp): clamp to [-1, 1], thrust ``a + 1`` in
  MC_NN_THRST_COEF units -> rpm -> ``(rpm - MC_NN_MIN_RPM) / (MC_NN_MAX_RPM - MC_NN_MIN_RPM)``
  clamped -> ``0.8 x^2 + 0.2 x`` = actuator_motors.
* actuator_motors -> motor: PX4's thrust model THR_MDL_FAC (thrust ~ fac u^2 + (1 - fac) u),
  inverted to the ESC command, then the vehicle's own thrust curve.

The MC_NN_* and THR_MDL_FAC values come from the twin's parameters when set there, else from the
export's recommendations stored in the .npz.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sim.errors import QuadhilError
from sim.frames import quat_to_rotmat
from sim.sitl.px4.controllers import thrust_model_to_esc  # noqa: F401 - also re-exported for tests
from sim.vehicle import Vehicle

RESCALE_A = 0.8  # mc_nn_control.cpp RescaleActions (a = 0.8)
THRUST_COEFF_SCALE = 1e5


def px4_rescale(action: np.ndarray, thrust_coeff_raw: float, min_rpm: float, max_rpm: float) -> np.ndarray:
    """mc_nn_control.cpp ``RescaleActions``: network actions -> actuator_motors in [0, 1]."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    rpm = 60.0 * np.sqrt((a + 1.0) / (thrust_coeff_raw / THRUST_COEFF_SCALE))
    x = np.clip((rpm - min_rpm) / (max_rpm - min_rpm), 0.0, 1.0)
    return RESCALE_A * x * x + (1.0 - RESCALE_A) * x


class NeuralControl:
    """The twin's ``mc_nn_control``: same interface as ``controllers.Px4Cascade``."""

    name = "mc_nn_control"

    def __init__(self, vehicle: Vehicle, params, weights_path: str | Path):
        path = Path(weights_path)
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise QuadhilError(f"cannot load mc_nn weights {path}: {exc}") from None
        n = int(data["n_layers"])
        self.layers = [(data[f"kernel_{i}"].astype(np.float32), data[f"bias_{i}"].astype(np.float32),
                        str(data[f"activation_{i}"])) for i in range(n)]
        if self.layers[0][0].shape[0] != 15 or self.layers[-1][0].shape[1] != 4:
            raise QuadhilError(f"{path}: mc_nn_control networks map 15 inputs to 4 outputs")
        if str(data["vehicle"]) != vehicle.id:
            raise QuadhilError(f"{path} was exported for vehicle {str(data['vehicle'])!r}, not {vehicle.id!r}")
        self.defaults = {k: float(data[k]) for k in ("MC_NN_THRST_COEF", "MC_NN_MIN_RPM", "MC_NN_MAX_RPM",
                                                     "THR_MDL_FAC")}
        self.vehicle = vehicle
        self.params = params
        self.target_w: np.ndarray | None = None
        self.last_input = np.zeros(15, dtype=np.float32)
        self.last_output = np.zeros(4, dtype=np.float32)

    def _param(self, name: str) -> float:
        try:
            value = self.params[name]
        except (KeyError, TypeError):
            return self.defaults[name]
        return float(value) if value is not None and math.isfinite(float(value)) else self.defaults[name]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network on PX4 inputs (N, 15) float32 -> (N, 4) raw outputs."""
        h = np.asarray(x, dtype=np.float32)
        for k, b, act in self.layers:
            h = h @ k + b
            if act == "relu":
                h = np.maximum(h, np.float32(0.0))
        return h

    def inputs(self, est, target_w: np.ndarray) -> np.ndarray:
        """PopulateInputTensor in ENU/FLU: (15,) float32."""
        r = quat_to_rotmat(np.asarray(est.quat_wb))
        return np.concatenate([target_w - est.pos_w, r[0], r[1], est.vel_w, est.omega_b]).astype(np.float32)

    def reset(self, est) -> None:
        """Latch the current position as the setpoint (mc_nn_control reset_trajectory_setpoint)."""
        self.target_w = np.asarray(est.pos_w, dtype=np.float64).copy()

    def motor_thrust_n(self, est, sp, dt_s: float) -> np.ndarray:
        """(4,) motor thrust, N, PX4 motor order."""
        if sp.kind == "idle":
            self.target_w = None
            return np.zeros(4)
        if self.target_w is None:
            self.reset(est)
        pos_sp = np.asarray(getattr(sp, "pos_w", np.full(3, np.nan)), dtype=np.float64)
        if sp.kind == "trajectory" and np.all(np.isfinite(pos_sp)):
            self.target_w = pos_sp.copy()
        self.last_input = self.inputs(est, self.target_w)
        self.last_output = self.forward(self.last_input[None])[0]
        if not np.all(np.isfinite(self.last_output)):
            return np.zeros(4)  # PublishOutput passes NaN on, which the output module treats as disarmed
        u = px4_rescale(self.last_output, self._param("MC_NN_THRST_COEF"), self._param("MC_NN_MIN_RPM"),
                        self._param("MC_NN_MAX_RPM"))
        esc = thrust_model_to_esc(u, self._param("THR_MDL_FAC"))
        return np.asarray(self.vehicle.command_to_thrust(esc), dtype=np.float64)
