"""``quadhil fly --onboard``: a Crazyflie flown by the policy inside quadhil's app (mode 2).

The network runs onboard (``firmware_bridge/crazyflie_app``, weights flashed with the app); the
bridge only takes off and lands on the firmware's own stabilization (``Link.assist``), hands the
motors to the app with the target first (``CrazyflieLink.onboard_start``), streams the target as
SETPOINT packets while watching the state estimate, and takes the motors back
(``quadhil.enable = 0``) to land, or to descend when something is wrong:

* before arming: no quadhil app on the vehicle, no state estimate, or a battery below the vehicle
  file's ``low_voltage_v`` (none of ``quadhil fly``'s geofence and flight-plan checks: the abort
  radius around the target is the fence here);
* the app reports ``refused`` (its network is not a Crazyflie motor-level one at a rate dividing
  1 kHz, or it is the placeholder) or never reports ``policy``;
* the estimate is further than ``abort_radius_m`` from the target (from the hand-over on; the
  hover RMSE counts only after ``settle_s``), is stale for more than ``stale_s``, is not finite,
  or cflib loses the link;
* the bridge's own loop stops turning for ``stall_timeout_s`` (firmware_bridge.loop_watchdog): a
  ``stall`` record at once; with ``exit_on_stall`` (``quadhil fly --onboard``) the process exits 4
  and the app's link watchdog below lands the vehicle, else the flight lands when the loop turns.

The app has its own link watchdog in mode 2 (quadhil_app.c followLink, ``quadhil.lossMs``, default
500 ms): a bridge that dies or a radio that drops leaves the vehicle descending at 0.3 m/s, its
motors cut on the ground (STATUS ``link_lost``). The bridge, streaming at 20 Hz, never lets it trip
while the uplink works; a ``link_lost`` it hears is logged and listed in ``app_states``, and its
next SETPOINT resumes the policy (event ``resumed``) if the motors were not yet cut. The ``--model`` .tflite is not what flies: it is checked for what the app accepts
(vehicle crazyflie, motors, a rate dividing 1 kHz), and the app does not report which network
it holds, so the bridge cannot confirm the two are the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from firmware_bridge.flight import CLIMB_MPS, GROUND_TOUCH_M, SINK_MPS, TOUCHDOWN_TIMEOUT_S
from firmware_bridge.loop_watchdog import STALL_TIMEOUT_S, LoopStall, LoopWatchdog, check_stall_timeout, report_stall
from sim.errors import QuadhilError

TAKEOFF_TIMEOUT_S = 5.0
APP_START_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class OnboardConfig:
    """One onboard-policy flight. Positions world ENU, m; times s."""

    model: str
    link: str
    target_w: tuple[float, float, float] | None = None  # default: above the start at takeoff height
    takeoff_height_m: float = 0.5
    duration_s: float = 10.0
    arm: bool = False
    setpoint_rate_hz: float = 20.0
    abort_radius_m: float = 1.0
    settle_s: float = 2.0
    stale_s: float = 0.3
    connect_timeout_s: float = 10.0
    log_dir: str | None = "flights"  # a JSON-lines log onboard-*.jsonl here; None: none
    stall_timeout_s: float = STALL_TIMEOUT_S  # the loop watchdog (see the module docstring)
    exit_on_stall: bool = False


def app_refusal(spec) -> str | None:
    """Why the app would refuse a network made under ``spec`` (:func:`sim.sitl.app_channel.policy_refusal`), or None."""
    from sim.sitl.app_channel import policy_refusal

    return policy_refusal(spec.vehicle, spec.action_mode, spec.control_rate_hz, spec.action_history)


def fly_onboard(cfg: OnboardConfig, log=print, on_stall_exit=None, link=None) -> dict:
    """Fly; return the figures (``final_state`` ``landed`` | ``failsafe`` | ``refused`` | ``dry_run``,
    ``rmse_m`` over the hover after ``settle_s``, the app's states heard). Raises QuadhilError when
    the model or the vehicle cannot do this at all. ``on_stall_exit(summary)`` runs just before a
    stalled loop ends the process (``cfg.exit_on_stall``); ``link``: an unconnected link to
    ``cfg.link`` to fly through (default: ``make_link(cfg.link)``)."""
    from dataclasses import asdict

    from deploy.runtime import Policy
    from firmware_bridge.flightlog import FlightLogWriter
    from firmware_bridge.links import make_link
    from sim.sitl import app_channel as ac
    from sim.vehicle import load_vehicle

    check_stall_timeout(cfg.stall_timeout_s)  # not first met after arming
    spec = Policy.load(cfg.model).spec
    why = app_refusal(spec)
    if why is not None:
        raise QuadhilError(f"--onboard: {why}")
    if not cfg.link.startswith(("radio://", "usb://", "udp://")):
        raise QuadhilError("--onboard flies quadhil's Crazyflie app: the link must be radio://, usb:// or udp://")
    vehicle = load_vehicle(spec.vehicle)
    link = link if link is not None else make_link(cfg.link)
    result: dict = {"mode": "onboard", "model": cfg.model, "link": cfg.link, "dry_run": not cfg.arm,
                    "rmse_m": None, "max_error_m": None, "hover_s": 0.0, "reason": None, "app_states": []}
    flog = None
    if cfg.log_dir:
        flog = FlightLogWriter.in_dir(cfg.log_dir, {"mode": "onboard", "model": cfg.model, "spec": spec.to_dict(),
                                                    "config": asdict(cfg)}, stem="onboard")
        result["log"] = str(flog.path)
    t0 = time.monotonic()

    def record(kind: str, **fields) -> None:
        if flog is not None:
            flog.write({"type": kind, "t": time.monotonic() - t0, **fields})

    def on_stall(stall: LoopStall) -> None:  # from the watchdog's thread
        summary = None
        if cfg.exit_on_stall:
            summary = {**result, "final_state": "stalled", "reason": stall.describe(), "where": stall.where}
        report_stall(flog, stall.t_detect_s - t0, stall, summary, on_stall_exit,
                     f"quadhil fly --onboard: {stall.describe()}; the app's link watchdog lands the vehicle "
                     f"(quadhil.lossMs)",
                     summary_record=None if summary is None else {k: v for k, v in summary.items() if k != "log"})

    try:
        link.connect(cfg.connect_timeout_s)
        record("link", **link.describe())
        link.prepare(spec, vehicle)
        if "motors" not in link.action_modes() or link.motor_path != "app_channel":
            result.update(final_state="refused", reason=f"no quadhil app on {cfg.link} (no quadhil.enable parameter)")
            return result
        tel = _wait_telemetry(link, cfg.stale_s * 10)
        if tel is None:
            result.update(final_state="refused", reason="no state estimate from the vehicle")
            return result
        battery_min_v = vehicle.battery.low_voltage_v
        deadline = time.monotonic() + 1.0  # the slow log block (pm.vbat) comes at 10 Hz
        while link.battery_v is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if link.battery_v is None or not link.battery_v >= battery_min_v:
            result.update(final_state="refused", reason=f"battery {link.battery_v} V, need >= {battery_min_v:.2f} V "
                                                        f"({link.battery_source})")
            return result
        start = np.asarray(tel.pos_w, dtype=np.float64)
        target = np.asarray(cfg.target_w if cfg.target_w is not None else
                            (start[0], start[1], start[2] + cfg.takeoff_height_m), dtype=np.float64)
        result["target_w"] = target.tolist()
        if not cfg.arm:
            link.onboard_setpoint(target)  # a dry run sends nothing
            result.update(final_state="dry_run", reason="dry run: nothing was sent")
            return result
        link.arm(0.0)
        with LoopWatchdog(cfg.stall_timeout_s, on_stall) as wd:
            record("phase", phase="takeoff", start=start, target=target)
            reason = _takeoff(link, target[2], start[:2], log, wd)
            errors: list[float] = []
            if reason is None:
                record("phase", phase="onboard")
                reason = _hover(link, cfg, target, errors, result, ac, log, record, wd)
            record("phase", phase="land", reason=reason)
            result["app_states"] = [ac.AppState(s.state).name.lower() for s in _dedup(link.app_status)]
            if errors:
                e = np.asarray(errors)
                result.update(rmse_m=float(np.sqrt(np.mean(e ** 2))), max_error_m=float(e.max()))
            landed = _land(link, log, wd)
        if reason is None:
            result.update(final_state="landed" if landed else "failsafe",
                          reason=None if landed else "touch-down not confirmed")
        else:
            result.update(final_state="refused" if reason.startswith("app refused") else "failsafe", reason=reason)
        return result
    finally:
        link.close()
        if flog is not None:
            for s in link.app_status:
                record("app_status", state=ac.AppState(s.state).name.lower(), event=ac.AppEvent(s.event).name.lower(),
                       app_time_ms=s.time_ms, watchdog_trips=s.watchdog_trips, rejected=s.rejected)
            record("summary", **{k: v for k, v in result.items() if k != "log"})
            flog.close()


def _dedup(statuses: list) -> list:
    out = []
    for s in statuses:
        if not out or (out[-1].state, out[-1].event) != (s.state, s.event):
            out.append(s)
    return out


def _wait_telemetry(link, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tel = link.telemetry.latest()
        if tel is not None:
            return tel
        time.sleep(0.01)
    return None


def _fresh(link, stale_s: float):
    tel = link.telemetry.latest()
    if tel is None or time.monotonic() - tel.t_arrival_s > stale_s or not np.all(np.isfinite(tel.pos_w)):
        return None
    return tel


def _takeoff(link, z_m: float, hold_xy, log, wd: LoopWatchdog) -> str | None:
    """Climb on the firmware's stabilization to ``z_m``; None when there, else why not."""
    t0 = time.monotonic()
    while True:
        wd.kick()
        if wd.stall is not None:
            return wd.stall.describe()
        tel = _fresh(link, 0.3)
        if tel is None:
            return "no fresh state estimate during takeoff"
        if tel.pos_w[2] >= z_m - 0.05:
            log(f"takeoff: z = {tel.pos_w[2]:.2f} m after {time.monotonic() - t0:.1f} s")
            return None
        if time.monotonic() - t0 > TAKEOFF_TIMEOUT_S:
            return f"assisted takeoff did not reach z = {z_m:.2f} m in {TAKEOFF_TIMEOUT_S:.0f} s"
        link.assist(CLIMB_MPS, tel, np.asarray(hold_xy))
        time.sleep(0.02)


def _hover(link, cfg: OnboardConfig, target, errors: list, result: dict, ac, log, record,
           wd: LoopWatchdog) -> str | None:
    """The app flies; the bridge streams the target and watches. None when the hover completed."""
    n0 = len(link.app_status)
    link.onboard_start(target)
    t0 = time.monotonic()
    period_s = 1.0 / cfg.setpoint_rate_hz
    started = False
    heard_loss = False
    while True:
        wd.kick()
        if wd.stall is not None:
            return wd.stall.describe()
        now = time.monotonic()
        new = link.app_status[n0:]
        if any(s.state == ac.AppState.REFUSED for s in new):
            return "app refused its onboard network (quadhil.state = refused): flash the app with weights from " \
                   "`quadhil export RUN --format c`"
        if not heard_loss and any(s.state == ac.AppState.LINK_LOST for s in new):
            heard_loss = True  # once: a flaky uplink may trip it at every gap
            log("the app reports link_lost: our SETPOINTs stopped reaching it for quadhil.lossMs; it descends "
                "until the next one arrives")
        if not started:
            started = any(s.state == ac.AppState.POLICY for s in new)
            if not started and now - t0 > APP_START_TIMEOUT_S:
                return f"the app did not report its policy running within {APP_START_TIMEOUT_S:.0f} s"
        if not link.alive:
            return f"link lost: {link.lost_reason}"
        tel = _fresh(link, cfg.stale_s)
        if tel is None:
            return f"state estimate stale for more than {cfg.stale_s:.1f} s or not finite"
        err = float(np.linalg.norm(np.asarray(tel.pos_w) - target))
        record("tick", pos=tel.pos_w, vel=tel.vel_w, quat=tel.quat_wb, omega=tel.omega_b, target=target, error_m=err)
        if err > cfg.abort_radius_m:
            return f"{err:.2f} m from the target (abort radius {cfg.abort_radius_m:.2f} m)"
        if now - t0 >= cfg.settle_s:
            errors.append(err)
        if now - t0 >= cfg.settle_s + cfg.duration_s:
            result["hover_s"] = now - t0 - cfg.settle_s
            log(f"onboard hover: {len(errors)} samples, last error {err:.3f} m")
            return None
        link.onboard_setpoint(target)
        time.sleep(max(0.0, period_s - (time.monotonic() - now)))


def _land(link, log, wd: LoopWatchdog) -> bool:
    """Take the motors back from the app and descend on the firmware's stabilization."""
    tel = _fresh(link, 0.3)
    t0 = time.monotonic()
    if tel is not None:  # a level setpoint is the commander's newest before the PID takes over
        link.assist(-SINK_MPS, tel, np.asarray(tel.pos_w[:2]))
    link.onboard_stop()
    landed = False
    while time.monotonic() - t0 < TOUCHDOWN_TIMEOUT_S:
        wd.kick()
        tel = _fresh(link, 0.3)
        if tel is None:
            break
        if tel.pos_w[2] < GROUND_TOUCH_M:
            landed = True
            break
        link.assist(-SINK_MPS, tel, np.asarray(tel.pos_w[:2]))
        time.sleep(0.02)
    link.stop_motors()
    link.disarm()
    log("landed" if landed else "touch-down not confirmed: motors stopped")
    return landed
