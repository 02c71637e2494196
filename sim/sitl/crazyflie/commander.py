"""Setpoints from CRTP: legacy RPYT (port 3) and generic (port 7), with the commander watchdog.

Sources in crazyflie-firmware:
- src/modules/src/crtp_commander_rpyt.c: ``<fffH`` roll, pitch, yaw rate (deg, deg/s), thrust.
  Thrust is locked (zero) until a packet with thrust 0 arrives, and locks again whenever the
  commander priority dropped to "disabled" (after the 500 ms watchdog). Raw thrust below
  MIN_THRUST 1000 is zero; above MAX_THRUST 60000 it is capped. Roll/pitch are angles or
  rates per ``flightmode.stabModeRoll/Pitch`` (1 angle, 0 rate).
- src/modules/src/crtp_commander_generic.c: type byte then data; stop (0) is a zero setpoint,
  manual (11) is ``<fffHB`` roll, pitch, yaw rate, thrust, rate flag (roll/pitch in deg/s when
  set). Types the firmware does not know give a zero setpoint (the decoder table has no entry).
- src/modules/src/crtp_commander.c: channel 1 meta command 0 = notify setpoint stop, which
  relaxes the CRTP priority to the lowest so another source may take over.
- src/modules/src/commander.c commanderGetSetpoint: no setpoint for 500 ms
  (COMMANDER_WDT_TIMEOUT_STABILIZE) -> level out (roll = pitch = 0, yaw rate 0, thrust kept)
  and priority disabled; for 2000 ms (COMMANDER_WDT_TIMEOUT_SHUTDOWN) -> the null setpoint.

Pitch is in the firmware's legacy sign: cflib sends ``-pitch``, so a wire pitch (or pitch
rate) of +x is nose up, i.e. -x about the FLU y axis. Yaw rate is FLU (counter-clockwise +).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

MODE_DISABLE, MODE_ABS, MODE_VELOCITY = 0, 1, 2  # stabilizer_types.h stab_mode_t

PRIORITY_DISABLE, PRIORITY_LOWEST, PRIORITY_CRTP = 0, 1, 2  # commander.h
WDT_STABILIZE_S = 0.5
WDT_SHUTDOWN_S = 2.0
MIN_THRUST = 1000
MAX_THRUST = 60000

GENERIC_STOP = 0
GENERIC_MANUAL = 11
# Types the firmware decodes but that need the position controller, which this twin lacks.
GENERIC_NEEDS_POSITION_CONTROL = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
META_NOTIFY_SETPOINT_STOP = 0


@dataclass(frozen=True)
class Setpoint:
    """The firmware's setpoint_t, reduced to what the PID attitude controller reads.

    Angles in degrees, rates in deg/s, pitch in the legacy sign; thrust in PWM-like units
    0..65535 (per motor base command).
    """

    thrust: float = 0.0
    mode_roll: int = MODE_DISABLE
    mode_pitch: int = MODE_DISABLE
    mode_yaw: int = MODE_DISABLE
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    roll_rate_dps: float = 0.0
    pitch_rate_dps: float = 0.0
    yaw_rate_dps: float = 0.0

    def modes(self) -> tuple[int, int, int]:
        """(roll, pitch, yaw) modes: the controller resets its PIDs when these change."""
        return self.mode_roll, self.mode_pitch, self.mode_yaw


NULL_SETPOINT = Setpoint()


def level_out(sp: Setpoint) -> Setpoint:
    """commander.c watchdog leveling: angles zero, yaw rate zero, thrust kept."""
    return replace(sp, mode_roll=MODE_ABS, mode_pitch=MODE_ABS, mode_yaw=MODE_VELOCITY,
                   roll_deg=0.0, pitch_deg=0.0, yaw_rate_dps=0.0)


class Commander:
    """Holds the latest CRTP setpoint and its age; decodes ports 3 and 7."""

    def __init__(self) -> None:
        self.setpoint = NULL_SETPOINT
        self.last_update_s = 0.0  # boot counts as the last update, as commanderInit does
        self.priority = PRIORITY_DISABLE
        self.thrust_locked = True
        self.rejected = 0
        self.unsupported = 0
        self.accepted = 0

    def inactivity_s(self, now_s: float) -> float:
        """Seconds since the last accepted setpoint (commanderGetInactivityTime)."""
        return now_s - self.last_update_s

    def set_setpoint(self, sp: Setpoint, now_s: float) -> None:
        """commanderSetSetpoint at CRTP priority: the stabilizer uses ``sp`` from now on and the
        watchdog restarts (also what an onboard app feeding setpoints calls)."""
        self.setpoint = sp
        self.last_update_s = now_s
        self.priority = PRIORITY_CRTP
        self.accepted += 1

    _set = set_setpoint  # name used by sim.sitl.crazyflie.app_relay

    def handle_rpyt(self, channel: int, data: bytes, now_s: float, stab_roll_angle: bool,
                    stab_pitch_angle: bool) -> None:
        """Port 3 channel 0: legacy roll/pitch/yawrate/thrust."""
        if channel != 0 or len(data) < 14:
            self.rejected += 1
            return
        self.update_priority(now_s)
        roll, pitch, yaw_rate, raw_thrust = struct.unpack_from("<fffH", data)
        if not all(map(_finite, (roll, pitch, yaw_rate))):
            self.rejected += 1
            return
        if self.priority == PRIORITY_DISABLE:
            self.thrust_locked = True
        if raw_thrust == 0:
            self.thrust_locked = False
        thrust = 0 if (self.thrust_locked or raw_thrust < MIN_THRUST) else min(raw_thrust, MAX_THRUST)
        sp = Setpoint(
            thrust=float(thrust),
            mode_roll=MODE_ABS if stab_roll_angle else MODE_VELOCITY,
            mode_pitch=MODE_ABS if stab_pitch_angle else MODE_VELOCITY,
            mode_yaw=MODE_VELOCITY,
            roll_deg=roll if stab_roll_angle else 0.0,
            pitch_deg=pitch if stab_pitch_angle else 0.0,
            roll_rate_dps=0.0 if stab_roll_angle else roll,
            pitch_rate_dps=0.0 if stab_pitch_angle else pitch,
            yaw_rate_dps=yaw_rate,
        )
        self._set(sp, now_s)

    def handle_generic(self, channel: int, data: bytes, now_s: float) -> None:
        """Port 7: channel 0 setpoints, channel 1 meta commands."""
        if not data:
            self.rejected += 1
            return
        if channel == 1:
            if data[0] == META_NOTIFY_SETPOINT_STOP:
                self.priority = PRIORITY_LOWEST  # commanderRelaxPriority
            else:
                self.rejected += 1
            return
        if channel != 0:
            self.rejected += 1
            return
        kind = data[0]
        if kind == GENERIC_STOP:
            self._set(NULL_SETPOINT, now_s)
        elif kind == GENERIC_MANUAL:
            if len(data) != 16:  # type + 15-byte manualPacket_s; the firmware ASSERTs this size; we refuse instead of rebooting
                self.rejected += 1
                return
            roll, pitch, yaw_rate, thrust, rate = struct.unpack_from("<fffHB", data, 1)
            if not all(map(_finite, (roll, pitch, yaw_rate))):
                self.rejected += 1
                return
            rate_mode = rate == 1  # manualDecoder compares with true
            self._set(Setpoint(
                thrust=float(thrust),
                mode_roll=MODE_VELOCITY if rate_mode else MODE_ABS,
                mode_pitch=MODE_VELOCITY if rate_mode else MODE_ABS,
                mode_yaw=MODE_VELOCITY,
                roll_deg=0.0 if rate_mode else roll,
                pitch_deg=0.0 if rate_mode else pitch,
                roll_rate_dps=roll if rate_mode else 0.0,
                pitch_rate_dps=pitch if rate_mode else 0.0,
                yaw_rate_dps=yaw_rate,
            ), now_s)
        elif kind in GENERIC_NEEDS_POSITION_CONTROL:
            self.unsupported += 1  # not flown by this twin: ignored, counted
        else:
            self._set(NULL_SETPOINT, now_s)  # no decoder: the memset setpoint is applied

    def update_priority(self, now_s: float) -> None:
        """The watchdog drops the priority to disabled after 500 ms without setpoints."""
        if self.inactivity_s(now_s) > WDT_STABILIZE_S:
            self.priority = PRIORITY_DISABLE

    def current(self, now_s: float) -> Setpoint:
        """The setpoint the stabilizer uses now, after the watchdog."""
        age = self.inactivity_s(now_s)
        if age > WDT_SHUTDOWN_S:
            self.priority = PRIORITY_DISABLE
            return NULL_SETPOINT
        if age > WDT_STABILIZE_S:
            self.priority = PRIORITY_DISABLE
            return level_out(self.setpoint)
        return self.setpoint


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")
