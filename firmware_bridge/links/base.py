"""What every link offers the control loop: telemetry in, commands out, arming, failsafe.

A link owns its client library (cflib or pymavlink) and converts at its boundary: what it hands
the loop is always world ENU / body FLU in SI (through :mod:`sim.frames`), what it takes is the
contract's command (:class:`sim.contract.CtbrCommand` or :class:`sim.contract.MotorCommand`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from sim.errors import QuadhilError


class LinkError(QuadhilError):
    """The link could not be opened, or the vehicle at its end did not answer as expected."""


@dataclass(frozen=True)
class Telemetry:
    """One state estimate. World ENU, body FLU, SI units; quaternion body-to-world (w, x, y, z)."""

    t_arrival_s: float  # time.monotonic() when the last piece of this sample arrived
    t_vehicle_s: float  # the vehicle's own timestamp of the sample (s since its boot)
    pos_w: np.ndarray
    vel_w: np.ndarray
    quat_wb: np.ndarray
    omega_b: np.ndarray
    seq: int  # increases by one per sample the link accepted


class TelemetryBuffer:
    """The newest sample, handed from the link's receive thread to the loop.

    ``wait_newer(seq, deadline)`` blocks until a sample newer than ``seq`` arrives or the
    monotonic ``deadline`` passes; the loop then runs its tick at once (low latency).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._latest: Telemetry | None = None
        self._seq = 0
        self.rejected = 0  # samples dropped: timestamp went backwards or repeated

    def publish(self, t_arrival_s: float, t_vehicle_s: float, pos_w, vel_w, quat_wb, omega_b) -> None:
        """Store a new sample (called by the receive thread); timestamps must increase."""
        with self._cond:
            if self._latest is not None and t_vehicle_s <= self._latest.t_vehicle_s:
                self.rejected += 1
                return
            self._seq += 1
            self._latest = Telemetry(t_arrival_s, t_vehicle_s, np.asarray(pos_w, dtype=np.float64),
                                     np.asarray(vel_w, dtype=np.float64), np.asarray(quat_wb, dtype=np.float64),
                                     np.asarray(omega_b, dtype=np.float64), self._seq)
            self._cond.notify_all()

    def latest(self) -> Telemetry | None:
        """The newest sample, or None before the first one."""
        with self._cond:
            return self._latest

    def wait_newer(self, seq: int, deadline_s: float) -> Telemetry | None:
        """Block until a sample with ``.seq > seq`` exists or ``deadline_s`` (monotonic) passes."""
        with self._cond:
            while self._latest is None or self._latest.seq <= seq:
                remaining = deadline_s - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._latest

    def wake(self) -> None:
        """Wake any waiter (link lost, signal)."""
        with self._cond:
            self._cond.notify_all()


class Link:
    """Base class of the cflib and pymavlink links. Subclasses fill in the hardware calls."""

    firmware: str = ""  # "crazyflie-firmware" or "px4": what is at the other end
    uri: str = ""
    # Hz: the most often this link can deliver a state estimate; None: as often as request_rate asks
    telemetry_rate_hz: float | None = None

    def __init__(self) -> None:
        self.telemetry = TelemetryBuffer()
        self.battery_v: float | None = None
        self.lost_reason: str | None = None  # set by the link when it knows the vehicle is gone
        self.dry_run = True  # until arm() succeeds, nothing that could spin a motor is sent
        self.statustexts: list[tuple[float, int, str]] = []  # (monotonic s, severity, text) the vehicle said

    # -- lifecycle -------------------------------------------------------------------------
    def connect(self, timeout_s: float) -> None:
        """Open the link and start telemetry; raise :class:`LinkError` on failure."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the link (idempotent)."""
        raise NotImplementedError

    def action_modes(self) -> tuple[str, ...]:
        """Contract action modes this link can carry to the vehicle it found."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Facts about the link for the flight log header."""
        return {"uri": self.uri, "firmware": self.firmware}

    @property
    def alive(self) -> bool:
        """False once the link knows the vehicle is gone."""
        return self.lost_reason is None

    def read_params(self, names: list[str], timeout_s: float = 3.0) -> dict[str, float]:
        """Firmware parameters by name ({} where the link has no parameter protocol)."""
        return {}

    def takeoff_budget_s(self, height_m: float, climb_mps: float) -> float:
        """How long an assisted takeoff to ``height_m`` may take before it counts as failed, s."""
        return 5.0

    def land_on_vehicle(self, height_m: float, alive=None) -> dict | None:
        """Hand the landing to the vehicle's own landing mode and wait until it disarmed itself;
        a report ({"disarmed": bool, "disarmed_by": ..., times}) or None where the vehicle has
        no such mode (the bridge then touches down on :meth:`assist` and stops the motors).
        ``alive()``, if given, is called every turn of the wait (the bridge's loop watchdog is
        kicked there, so a wait wedged in the client library is caught like a wedged loop)."""
        return None

    # -- flight ----------------------------------------------------------------------------
    def prepare(self, spec, vehicle) -> None:
        """Called once after preflight checks pass, before arm(): remember spec and vehicle."""
        self.spec = spec
        self.vehicle = vehicle

    def arm(self, hold_s: float, airborne: bool = False) -> None:
        """Arm the vehicle and enter the mode that takes our commands (PX4: stream, then OFFBOARD);
        ``airborne``: taking over a vehicle in the air (stream hover thrust, not idle)."""
        raise NotImplementedError

    def send(self, command) -> dict:
        """Send one contract command; return the firmware-unit values sent (for the log)."""
        raise NotImplementedError

    def encode(self, command) -> dict:
        """Firmware-unit values ``send`` would put on the wire (used by dry runs too)."""
        raise NotImplementedError

    def assist(self, vz_ref_mps: float, latest: Telemetry, hold_xy_w: np.ndarray | None = None) -> dict:
        """Climb/descend at ``vz_ref_mps`` (world z up) on the vehicle's own stabilization,
        holding ``hold_xy_w`` (ENU, m) where the vehicle can: takeoff and touch-down, where a
        hover policy is out of its training range."""
        raise NotImplementedError

    def stop_motors(self) -> None:
        """Cut the motors now (end of landing, or tumbling failsafe)."""
        raise NotImplementedError

    def failsafe_step(self, action: str, t_since_s: float, latest: Telemetry | None) -> bool:
        """Carry out one tick of the failsafe ``action``; return True once it is complete."""
        raise NotImplementedError

    def send_external_pose(self, pos_w: np.ndarray, quat_wb: np.ndarray) -> dict:
        """Forward a motion-capture pose (world ENU m, body-FLU-to-ENU quaternion w,x,y,z) to the
        vehicle's estimator, in dry runs too (it moves no motor); return the wire values."""
        raise LinkError(f"{type(self).__name__} cannot carry an external pose")

    def disarm(self) -> None:
        """Disarm at the end of a flight (best effort)."""
