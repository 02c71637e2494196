"""PX4 flight modes: navigation states and their MAVLink custom_mode encoding.

Copied from PX4-Autopilot src/modules/commander/px4_custom_mode.h: ``custom_mode`` is a
union of {reserved: 16 bits, main_mode: 8 bits, sub_mode: 8 bits}, so on the wire
custom_mode = main_mode << 16 | sub_mode << 24 (OFFBOARD = 6 << 16 = 393216).
HEARTBEAT base_mode flags per navigation state follow
src/modules/mavlink/streams/HEARTBEAT.hpp (get_mavlink_navigation_mode).
"""

from __future__ import annotations

from enum import Enum

# px4_custom_mode.h: enum PX4_CUSTOM_MAIN_MODE
MAIN_MANUAL = 1
MAIN_ALTCTL = 2
MAIN_POSCTL = 3
MAIN_AUTO = 4
MAIN_ACRO = 5
MAIN_OFFBOARD = 6
MAIN_STABILIZED = 7
MAIN_RATTITUDE_LEGACY = 8
MAIN_SIMPLE = 9
MAIN_TERMINATION = 10
# enum PX4_CUSTOM_SUB_MODE_AUTO
SUB_AUTO_READY = 1
SUB_AUTO_TAKEOFF = 2
SUB_AUTO_LOITER = 3
SUB_AUTO_MISSION = 4
SUB_AUTO_RTL = 5
SUB_AUTO_LAND = 6
SUB_AUTO_FOLLOW_TARGET = 8
SUB_AUTO_PRECLAND = 9

# MAV_MODE_FLAG (MAVLink common.xml)
MODE_FLAG_CUSTOM_MODE_ENABLED = 1
MODE_FLAG_TEST_ENABLED = 2
MODE_FLAG_AUTO_ENABLED = 4
MODE_FLAG_GUIDED_ENABLED = 8
MODE_FLAG_STABILIZE_ENABLED = 16
MODE_FLAG_HIL_ENABLED = 32
MODE_FLAG_MANUAL_INPUT_ENABLED = 64
MODE_FLAG_SAFETY_ARMED = 128

_AUTO_FLAGS = MODE_FLAG_AUTO_ENABLED | MODE_FLAG_STABILIZE_ENABLED | MODE_FLAG_GUIDED_ENABLED


class NavState(Enum):
    """PX4 navigation states the twin knows, value = (main_mode, sub_mode, base_mode flags)."""

    MANUAL = (MAIN_MANUAL, 0, MODE_FLAG_MANUAL_INPUT_ENABLED | MODE_FLAG_STABILIZE_ENABLED)
    ALTCTL = (MAIN_ALTCTL, 0, MODE_FLAG_MANUAL_INPUT_ENABLED | MODE_FLAG_STABILIZE_ENABLED)
    POSCTL = (MAIN_POSCTL, 0, MODE_FLAG_MANUAL_INPUT_ENABLED | MODE_FLAG_STABILIZE_ENABLED
              | MODE_FLAG_GUIDED_ENABLED)
    AUTO_MISSION = (MAIN_AUTO, SUB_AUTO_MISSION, _AUTO_FLAGS)
    AUTO_LOITER = (MAIN_AUTO, SUB_AUTO_LOITER, _AUTO_FLAGS)
    AUTO_RTL = (MAIN_AUTO, SUB_AUTO_RTL, _AUTO_FLAGS)
    AUTO_TAKEOFF = (MAIN_AUTO, SUB_AUTO_TAKEOFF, _AUTO_FLAGS)
    AUTO_LAND = (MAIN_AUTO, SUB_AUTO_LAND, _AUTO_FLAGS)
    AUTO_PRECLAND = (MAIN_AUTO, SUB_AUTO_PRECLAND, _AUTO_FLAGS)
    AUTO_FOLLOW_TARGET = (MAIN_AUTO, SUB_AUTO_FOLLOW_TARGET, _AUTO_FLAGS)
    ACRO = (MAIN_ACRO, 0, MODE_FLAG_MANUAL_INPUT_ENABLED)
    OFFBOARD = (MAIN_OFFBOARD, 0, _AUTO_FLAGS)
    STAB = (MAIN_STABILIZED, 0, MODE_FLAG_MANUAL_INPUT_ENABLED | MODE_FLAG_STABILIZE_ENABLED)
    TERMINATION = (MAIN_TERMINATION, 0, 0)

    @property
    def main_mode(self) -> int:
        """px4_custom_mode main_mode."""
        return self.value[0]

    @property
    def sub_mode(self) -> int:
        """px4_custom_mode sub_mode (0 outside AUTO)."""
        return self.value[1]

    @property
    def custom_mode(self) -> int:
        """HEARTBEAT.custom_mode: main_mode << 16 | sub_mode << 24."""
        return encode_custom_mode(self.main_mode, self.sub_mode)

    def base_mode(self, armed: bool) -> int:
        """HEARTBEAT.base_mode: custom-mode-enabled always, plus armed and the mode's flags."""
        return MODE_FLAG_CUSTOM_MODE_ENABLED | self.value[2] | (MODE_FLAG_SAFETY_ARMED if armed else 0)

    @property
    def label(self) -> str:
        """Human name as QGroundControl shows it (e.g. 'AUTO.TAKEOFF')."""
        return self.name.replace("AUTO_", "AUTO.")


def encode_custom_mode(main_mode: int, sub_mode: int = 0) -> int:
    """custom_mode for HEARTBEAT / SET_MODE from PX4 main and sub mode."""
    return (int(main_mode) & 0xFF) << 16 | (int(sub_mode) & 0xFF) << 24


def decode_custom_mode(custom_mode: int) -> tuple[int, int]:
    """(main_mode, sub_mode) from a HEARTBEAT custom_mode."""
    return (int(custom_mode) >> 16) & 0xFF, (int(custom_mode) >> 24) & 0xFF


def nav_state_from_custom(main_mode: int, sub_mode: int) -> NavState | None:
    """The navigation state a DO_SET_MODE (main, sub) asks for, or None if PX4 maps it to none.

    Mirrors Commander.cpp VEHICLE_CMD_DO_SET_MODE: AUTO with sub_mode 0 means AUTO.MISSION.
    """
    if main_mode == MAIN_AUTO:
        if sub_mode == 0:
            return NavState.AUTO_MISSION
        for s in NavState:
            if s.main_mode == MAIN_AUTO and s.sub_mode == sub_mode:
                return s
        return None
    for s in NavState:
        if s.main_mode == main_mode and main_mode != MAIN_AUTO:
            return s
    return None


def nav_state_from_heartbeat(custom_mode: int) -> NavState | None:
    """Decode a HEARTBEAT custom_mode into a navigation state (None if unknown)."""
    return nav_state_from_custom(*decode_custom_mode(custom_mode))
