"""One flight: load the policy, connect, check, arm, fly the loop, land or failsafe, log.

The control loop runs on a fixed-rate monotonic schedule (:mod:`firmware_bridge.scheduler`). Each
tick waits for a telemetry sample newer than the last one, but never past its deadline less a
margin, so a tick runs as soon as fresh state arrives (low latency) and still runs on time when
telemetry is late (its state age is recorded and the supervisor watches it).

Per tick: observation through :func:`sim.contract.observe` (the function training used), action
through :class:`deploy.runtime.Policy`, command through :func:`sim.contract.act_to_command`, out
through the link. Every tick, transition and failsafe goes to the flight log as it happens.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from firmware_bridge.flightlog import FlightLogWriter
from firmware_bridge.links import Link, LinkError, Telemetry, link_kind, make_link
from firmware_bridge.loop_watchdog import STALL_TIMEOUT_S, LoopStall, LoopWatchdog, check_stall_timeout, report_stall
from firmware_bridge.px4_preflight import px4_param_refusals
from firmware_bridge.mission import (
    PX4_FENCE_PARAMS, FenceChoice, MissionLimits, check_mission, default_geofence, mission_summary, plan_mission,
    transit_limit_s,
)
from firmware_bridge.reference import Reference
from firmware_bridge.scheduler import Scheduler
from firmware_bridge.supervisor import (
    Geofence, Limits, PreflightInputs, State, StateSample, Supervisor, failsafe_action,
)
from sim.contract import (act_to_command, hover_action, integrate_position_error, observe, push_action_history,
                          push_state_history, start_state_history)
from sim.errors import QuadhilError
from sim.vehicle import load_vehicle

TELEMETRY_WAIT_S = 3.0  # preflight: how long to wait for the first state estimate
BATTERY_WAIT_S = 1.5  # preflight: how long to wait for a battery reading
PREFLIGHT_OBSERVE_S = 0.3  # preflight: watch telemetry this long before judging it
PARAM_READ_S = 1.5  # preflight: how long to wait for the vehicle's geofence parameters (PX4)
SETTLE_S = 1.0  # hover RMSE ignores the first second after the approach ramp ends
GROUND_TOUCH_M = 0.05  # landed when this close to the ground height
# Takeoff and touch-down fly on the vehicle's own stabilization (Link.assist): a hover policy was
# trained in the air and has never seen ground contact. It takes over above HANDOVER_M and hands
# back TOUCHDOWN_M above the ground.
HANDOVER_M = 0.4
TOUCHDOWN_M = 0.25
CLIMB_MPS = 0.6
SINK_MPS = 0.3
TOUCHDOWN_TIMEOUT_S = 4.0
# A tick stops waiting for fresh state this fraction of a period (at least WAIT_MARGIN_MIN_S)
# before its deadline: waking from a timed wait takes up to a few hundred microseconds on a busy
# machine, which at 500 Hz is a large part of the period.
WAIT_MARGIN = 0.25
WAIT_MARGIN_MIN_S = 0.001


class RefusedToArm(QuadhilError):
    """The supervisor refused to arm; the message lists every reason."""


class FailsafeExit(QuadhilError):
    """The flight ended in failsafe (raised after the failsafe was carried out)."""


@dataclass
class FlyConfig:
    """Everything ``quadhil fly`` needs."""

    model: str
    link: str
    target_w: tuple[float, float, float] | None = None
    duration_s: float = 10.0  # hover time at the target
    arm: bool = False
    geofence: Geofence | None = None
    log_dir: str = "flights"
    takeoff_height_m: float | None = None
    handover: bool = False
    connect_timeout_s: float = 10.0
    battery_min_v: float | None = None
    rate_hz: float | None = None  # override the spec's control rate (benchmarks)
    allow_rate_mismatch: bool = False  # fly a rate other than the trained one (a warning, not a refusal)
    # overrides of the vehicle file's [limits] (firmware_bridge.mission.MissionLimits); None: the file's
    fence_margin_m: float | None = None
    min_height_m: float | None = None
    transit_max_s: float | None = None
    flight_time_max_s: float | None = None
    status: bool = True  # live status line on stderr
    realtime: bool = False  # raise the bridge's scheduling priority (SCHED_FIFO, else nice)
    set_params: bool = False  # PX4: set the parameters the policy was trained for instead of refusing
    mocap: str | None = None  # TYPE:HOST[,object=NAME]: stream a mocap pose to the vehicle (firmware_bridge.mocap)
    mocap_frame: str = "z-up"  # the mocap system's axes (sim.frames.MOCAP_AXES)
    mocap_timeout_s: float | None = None  # tracking lost after this long without a pose (None: the default)
    mcap: bool = True  # also write the flight log as MCAP (firmware_bridge.flightlog_mcap)
    live: bool = False  # serve the flight live to Foxglove (firmware_bridge.live)
    live_port: int = 8765
    # The loop watchdog (firmware_bridge.loop_watchdog): a loop that made no progress this long is
    # reported in the log at once. Then, with exit_on_stall (quadhil fly), the process exits with
    # loop_watchdog.EXIT_STALLED (its wedged thread cannot be unwound); without, the flight goes to failsafe if
    # the loop ever turns again.
    stall_timeout_s: float = STALL_TIMEOUT_S
    exit_on_stall: bool = False


@dataclass
class FlightResult:
    """What a flight produced (the ``--json`` summary)."""

    log: str
    final_state: str
    failsafe: str | None
    failsafe_action: str | None
    failsafe_response_ms: float | None
    refused: list[str]
    ticks: int
    rmse_m: float | None
    deadline_miss_rate: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    state_age_p99_ms: float | None
    infer_p99_ms: float | None
    fresh_rate: float
    rate_hz: float
    dry_run: bool
    cpu_percent: float | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain dictionary for JSON."""
        d = dict(self.__dict__)
        d.pop("extra")
        d.update(self.extra)
        return d


class _Signals:
    """SIGINT/SIGTERM become a failsafe request instead of killing the loop mid-command."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.t_s: float | None = None
        self._old = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        if self.name is None:
            self.name = signal.Signals(signum).name
            self.t_s = time.monotonic()

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


class _Status:
    """The live one-line status on stderr (rich when it is a terminal, a line every 2 s if not)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._live = None
        self._last = 0.0
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=Console(stderr=True), refresh_per_second=8, transient=False)
            self._live.start()

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(text)
        elif time.monotonic() - self._last > 2.0:
            self._last = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()


@dataclass
class _Plan:
    """Where the flight starts, goes and lands (world ENU, m)."""

    start_w: np.ndarray
    target_w: np.ndarray
    takeoff_h: float
    ground_z: float
    assisted: bool  # armed: takeoff and touch-down on the vehicle's own stabilization
    handover: bool
    handover_z: float  # the policy takes over above this height


def check_link_for_spec(uri: str, spec) -> None:
    """Refuse, before connecting, what no vehicle on this kind of link can fly."""
    if link_kind(uri) == "mavlink" and spec.action_mode == "motors":
        raise QuadhilError(
            "a 'motors' policy cannot fly over MAVLink: PX4 v1.14+ takes no motor commands on that link. "
            "Fly motor-level on PX4 onboard instead: `quadhil export RUN --format px4-nn` and run it in PX4's "
            "mc_nn_control module")


class Flight:
    """A single flight; :meth:`run` returns a :class:`FlightResult` or raises."""

    def __init__(self, cfg: FlyConfig) -> None:
        from deploy.runtime import Policy  # TF-free LiteRT runtime

        self.cfg = cfg
        link_kind(cfg.link)  # a bad URI is refused before the model is even read
        check_stall_timeout(cfg.stall_timeout_s)  # not first met after arming
        self.policy = Policy.load(cfg.model)
        self.spec = self.policy.spec
        self.vehicle = load_vehicle(self.spec.vehicle)
        check_link_for_spec(cfg.link, self.spec)
        self.rate_hz = float(cfg.rate_hz or self.spec.control_rate_hz)
        self.period_s = 1.0 / self.rate_hz
        battery_min = cfg.battery_min_v if cfg.battery_min_v is not None else self.vehicle.battery.low_voltage_v
        # a body rate twice what the policy can command means lost control, not a manoeuvre
        rate_limit = 2.0 * float(np.linalg.norm(self.spec.body_rate_max_rad_s))
        self.limits = Limits(control_period_s=self.period_s, battery_min_v=battery_min, geofence=cfg.geofence,
                             body_rate_max_rad_s=rate_limit)
        self.sup = Supervisor(self.limits)
        self.mission_limits = MissionLimits.from_vehicle_file(self.vehicle.source_path).with_overrides(
            fence_margin_m=cfg.fence_margin_m, min_height_m=cfg.min_height_m, transit_max_s=cfg.transit_max_s,
            flight_time_max_s=cfg.flight_time_max_s)
        self.preflight: dict | None = None  # the preflight summary: fence, plan, limits, rule results
        self.refused_rules: list[dict] = []
        self.warnings: list[str] = []
        self.mocap = None
        if cfg.mocap:
            from firmware_bridge.mocap import MOCAP_TIMEOUT_S, MocapStream, parse_mocap

            self.mocap = MocapStream(parse_mocap(cfg.mocap, cfg.mocap_frame, cfg.mocap_timeout_s or MOCAP_TIMEOUT_S))
        self._tracking_lost = False
        self.live = None  # firmware_bridge.live.LiveView with --live
        self.link: Link = make_link(cfg.link)
        self.log: FlightLogWriter | None = None
        self._t0 = time.monotonic()
        self._watchdog: LoopWatchdog | None = None  # watches the loop from takeoff on
        self.on_stall_exit = None  # called with the summary dict just before a stall ends the process

    # -- helpers ---------------------------------------------------------------------------
    def _t(self) -> float:
        return time.monotonic() - self._t0

    def _record_transitions(self, since: int) -> None:
        for tr in self.sup.transitions[since:]:
            if self.log:
                self.log.write({"type": "transition", "t": tr.t_s - self._t0, "from": tr.src.value,
                                "to": tr.dst.value, "reason": tr.reason})

    def _sample(self, tel: Telemetry | None, now: float) -> StateSample | None:
        if tel is None:
            return None
        return StateSample(tel.pos_w, tel.vel_w, tel.quat_wb, tel.omega_b, now - tel.t_arrival_s)

    # -- run -------------------------------------------------------------------------------
    def run(self) -> FlightResult:
        """Connect, preflight, fly, land (or failsafe); always close the link and the log."""
        cfg = self.cfg
        header = {
            "model": cfg.model, "model_sha256": self.policy.sha256, "spec": self.spec.to_dict(),
            "vehicle": self.vehicle.id, "link": {"uri": cfg.link}, "rate_hz": self.rate_hz,
            "dry_run": not cfg.arm, "config": {
                "target_w": cfg.target_w, "duration_s": cfg.duration_s, "takeoff_height_m": cfg.takeoff_height_m,
                "handover": cfg.handover, "geofence": None if cfg.geofence is None else cfg.geofence.__dict__,
                "battery_min_v": self.limits.battery_min_v},
            "limits": {k: v for k, v in self.limits.__dict__.items() if k != "geofence"},
            "mocap": None if self.mocap is None else self.mocap.spec.describe(),
        }
        if cfg.realtime:
            from firmware_bridge.realtime import raise_priority

            header["priority"] = raise_priority()
        self.log = FlightLogWriter.in_dir(cfg.log_dir, header)
        self._attach_log_mirrors()
        status = _Status(cfg.status)
        cpu0, wall0 = time.process_time(), time.monotonic()
        try:
            with _Signals() as sigs:
                return self._run(sigs, status, cpu0, wall0)
        finally:
            status.close()
            if self.mocap is not None:
                self.mocap.stop()
            try:
                self.link.close()
            finally:
                self.log.close()

    def _attach_log_mirrors(self) -> None:
        """MCAP next to the JSON lines, and the live view: both see every record as written."""
        cfg = self.cfg
        if cfg.mcap:
            from firmware_bridge.flightlog_mcap import McapFlightLog

            self.log.add_mirror(McapFlightLog(self.log.path.with_suffix(".mcap"), self.log.header))
        if cfg.live:
            from firmware_bridge.live import LiveView

            self.live = LiveView.start(cfg.live_port, self.log.header)
            self.log.add_mirror(self.live)

    def _run(self, sigs: _Signals, status: _Status, cpu0: float, wall0: float) -> FlightResult:
        cfg, sup, link = self.cfg, self.sup, self.link
        n_tr = 0
        try:
            link.connect(cfg.connect_timeout_s)
        except LinkError:
            sup.abort(time.monotonic(), "could not connect")
            self._record_transitions(0)
            raise
        sup.start_preflight(time.monotonic())
        mocap_refusals = self._start_mocap() if self.mocap is not None else []
        if hasattr(link, "request_rate"):
            link.request_rate(self.rate_hz)
        self.log.write({"type": "link", "t": self._t(), **link.describe()})  # after the telemetry negotiation
        deadline = time.monotonic() + TELEMETRY_WAIT_S
        tel = link.telemetry.wait_newer(0, deadline)
        bat_deadline = time.monotonic() + BATTERY_WAIT_S
        while link.battery_v is None and time.monotonic() < bat_deadline and sigs.name is None:
            time.sleep(0.02)
        # watch the stream for a moment, then judge the newest sample (fresh, finite, at rest)
        time.sleep(PREFLIGHT_OBSERVE_S)
        tel = link.telemetry.latest()
        now = time.monotonic()
        if sigs.name is not None:
            sup.abort(now, f"interrupted by {sigs.name} before arming")
            self._record_transitions(n_tr)
            raise FailsafeExit(f"interrupted by {sigs.name} before arming; nothing was powered")
        mission, mission_refusals = self._check_mission(tel)
        param_refusals = px4_param_refusals(link, self.spec, self.vehicle, cfg.set_params, self.log)
        inputs = PreflightInputs(
            spec_vehicle=self.spec.vehicle, spec_firmware=self.vehicle.firmware,
            spec_action_mode=self.spec.action_mode, link_firmware=link.firmware,
            link_action_modes=link.action_modes(), state=self._sample(tel, now),
            battery_v=link.battery_v, handover=cfg.handover, mission_refusals=tuple(mission_refusals),
            param_refusals=tuple(param_refusals), mocap_refusals=tuple(mocap_refusals))
        refusals = sup.request_arm(time.monotonic(), inputs)
        self._record_transitions(n_tr)
        n_tr = len(sup.transitions)
        if refusals:
            self.log.write({"type": "summary", "final_state": sup.state.value, "refused": refusals,
                            "refused_rules": self.refused_rules, "failsafe": None, "ticks": 0})
            raise RefusedToArm("refused to arm: " + "; ".join(refusals))

        link.prepare(self.spec, self.vehicle)
        start, target, ground_z = mission.start_w, mission.target_w, mission.ground_z
        plan = _Plan(start_w=start, target_w=target, takeoff_h=mission.takeoff_h, ground_z=ground_z,
                     assisted=cfg.arm, handover=cfg.handover,
                     handover_z=ground_z + min(HANDOVER_M, 0.6 * max(float(target[2]) - ground_z, 0.0)))
        self.log.write({"type": "plan", "t": self._t(), **plan.__dict__})

        if cfg.arm:
            try:
                link.arm(hold_s=0.5, airborne=cfg.handover)
            except LinkError as exc:
                return self._failsafe_and_finish(sigs, status, cpu0, wall0, [], f"arming failed: {exc}",
                                                 time.monotonic())
        sup.takeoff(time.monotonic(), "taking off" if cfg.arm else "taking off (dry run: nothing is sent)")
        self._record_transitions(n_tr)
        # no cyclic-GC pauses inside the control loop: everything allocated per tick is freed
        # by reference counting; collect once now and again after the flight
        gc.collect()
        gc.disable()
        try:
            with LoopWatchdog(cfg.stall_timeout_s, self._on_stall) as self._watchdog:
                return self._loop(plan, sigs, status, cpu0, wall0)
        finally:
            gc.enable()

    def _on_stall(self, stall: LoopStall) -> None:
        """From the watchdog's thread: report the stall in the log at once; with
        ``exit_on_stall`` also end the process (the vehicle's own failsafe flies from here)."""
        summary = None
        if self.cfg.exit_on_stall:
            # the supervisor belongs to the loop's thread; the summary says what became of the flight
            summary = {"final_state": "stalled", "failsafe": stall.describe(),
                       "failsafe_action": "none: the vehicle's own failsafe", "where": stall.where,
                       "log": str(self.log.path), "dry_run": not self.cfg.arm, "rate_hz": self.rate_hz}
        report_stall(self.log, stall.t_detect_s - self._t0, stall, summary, self.on_stall_exit,
                     f"quadhil fly: {stall.describe()}; nothing more can be sent from this process, the "
                     f"vehicle's own failsafe takes over (log: {self.log.path})")

    def _start_mocap(self) -> list[str]:
        """Open the mocap system, stream every pose of the body to the vehicle from now on, wait
        for the first; return refusals (none: the body is tracked)."""
        from firmware_bridge.mocap import FIRST_FRAME_WAIT_S

        m = self.mocap
        m.sink = lambda pose: self.link.send_external_pose(pose.pos_w, pose.quat_wb)
        try:
            m.start()
        except QuadhilError as exc:
            return [f"mocap: {exc}"]
        first = m.wait_for_body(FIRST_FRAME_WAIT_S)
        self.log.write({"type": "mocap", "t": self._t(), **m.spec.describe(), "first_pose": None if first is None else
                        {"pos_w": first.pos_w, "quat_wb": first.quat_wb}})
        if first is None:
            return [f"mocap: object {m.spec.object_name!r} not tracked by {m.spec.kind}:{m.spec.host} within "
                    f"{FIRST_FRAME_WAIT_S:.0f} s ({m.frames} frames, none with it)"]
        time.sleep(0.1)  # let the vehicle's estimator converge on the poses before it is judged
        return []

    def preflight_extra(self) -> dict:
        """The preflight summary's part of the ``--json`` output: geofence (with its source),
        the plan and limits, the broken rules, warnings."""
        return {"geofence": None if self.preflight is None else self.preflight["geofence"],
                "preflight": self.preflight, "refused_rules": self.refused_rules, "warnings": self.warnings}

    def _check_mission(self, tel: Telemetry | None):
        """The preflight mission rules (firmware_bridge.mission), the same in a dry run as armed:
        pick the geofence, plan from where the vehicle is, set the flight's fence and time limits;
        return (the mission or None without a state estimate, refusals as text)."""
        cfg = self.cfg
        if tel is None or not np.all(np.isfinite(tel.pos_w)):
            return None, []  # the supervisor refuses: no (finite) state estimate
        kind = link_kind(cfg.link)
        if cfg.geofence is not None:
            fence = FenceChoice(cfg.geofence, "explicit (--geofence)")
        else:
            params = self.link.read_params(list(PX4_FENCE_PARAMS), PARAM_READ_S) if kind == "mavlink" else {}
            fence = default_geofence(kind, tel.pos_w, self.mission_limits, params)
        mission = plan_mission(tel.pos_w, cfg.target_w, cfg.takeoff_height_m, cfg.duration_s, cfg.handover,
                               self.rate_hz, self.spec.control_rate_hz, self.link.telemetry_rate_hz)
        refusals, self.warnings = check_mission(mission, fence.fence, self.mission_limits, cfg.allow_rate_mismatch)
        self.refused_rules = [r.as_dict() for r in refusals]
        self.limits = replace(self.limits, geofence=fence.fence, transit_limit_s=transit_limit_s(mission, self.mission_limits),
                              flight_time_max_s=self.mission_limits.flight_time_max_s)
        self.sup.limits = self.limits
        self.preflight = mission_summary(mission, fence, self.mission_limits)
        self.log.write({"type": "preflight", "t": self._t(), **self.preflight, "refused_rules": self.refused_rules,
                        "warnings": self.warnings})
        for w in self.warnings:
            print(f"quadhil fly: warning: {w}", file=sys.stderr, flush=True)
        return mission, [str(r) for r in refusals]

    def _reference(self, plan: "_Plan", from_w: np.ndarray) -> Reference:
        """The policy's reference from ``from_w`` (where it takes over): climb, target, hover,
        descend to TOUCHDOWN_M above the ground (an armed flight) or to the ground (dry run)."""
        floor = plan.ground_z + (TOUCHDOWN_M if plan.assisted else 0.0)
        ref = Reference.build(from_w, plan.target_w, plan.takeoff_h, self.cfg.duration_s, handover=plan.handover,
                              ground_z_m=floor)
        self.log.write({"type": "reference", "t": self._t(), "waypoints_w": ref.waypoints_w,
                        "hover_s": ref.hover_s, "floor_z_m": ref.ground_z_m, "ramp_s": ref.ramp_s})
        return ref

    def _loop(self, plan: "_Plan", sigs: _Signals, status: _Status, cpu0: float, wall0: float) -> FlightResult:
        spec, vehicle, link, sup, log = self.spec, self.vehicle, self.link, self.sup, self.log
        policy = self.policy
        history = np.tile(hover_action(spec, vehicle), (1, spec.action_history)).astype(np.float64)
        pos_integral = np.zeros((1, 3))  # position-error integral (layouts that observe it), m*s
        states = None  # past velocity / body-rate estimates (specs that observe them), from the first policy tick
        sched = Scheduler.start(self.rate_hz)
        t_fly0 = sched.t0_s
        log.write({"type": "takeoff", "t": t_fly0 - self._t0})  # tick times count from here
        latest = link.telemetry.latest()
        last_seq = latest.seq if latest is not None else 0  # tick 0 waits for a sample of its own
        missed_in_row = 0
        rows: list[dict] = []
        n_tr = len(sup.transitions)
        # "takeoff" (assisted climb) -> "policy" -> "touchdown" (assisted) -> landed
        mode = "takeoff" if plan.assisted and not plan.handover else "policy"
        ref = self._reference(plan, plan.start_w) if mode == "policy" else None
        t_ref0 = t_fly0
        t_touchdown0 = None
        hold_xy = None  # where takeoff / touch-down hold the horizontal position
        reached = not self.cfg.arm  # a dry run stays on the ground: no transit limit to keep
        while True:
            sched.wait_release()
            deadline = sched.deadline()
            wait_until = max(sched.release(), deadline - max(WAIT_MARGIN * self.period_s, WAIT_MARGIN_MIN_S))
            tel = link.telemetry.wait_newer(last_seq, wait_until)
            if tel is not None and tel.seq > last_seq and tel.t_arrival_s < sched.release() - 0.5 * self.period_s:
                # A sample from the previous period was still unconsumed: taking it would lock the
                # loop one sample behind for good (the phase lock cannot tell the two apart modulo
                # a period; seen as ~9 ms latency at 100 Hz). Wait for this period's sample.
                newer = link.telemetry.wait_newer(tel.seq, wait_until)
                if newer is not None and newer.seq > tel.seq:
                    tel = newer
            now = time.monotonic()
            fresh = tel is not None and tel.seq > last_seq
            if tel is not None:
                last_seq = tel.seq
            t_rel = now - t_fly0
            s = self._sample(tel, now)
            if not reached and s is not None and \
                    float(np.linalg.norm(np.asarray(s.pos_w) - plan.target_w)) <= self.mission_limits.reach_radius_m:
                reached = True
                log.write({"type": "reached", "t": t_rel, "pos": s.pos_w, "target": plan.target_w})
            # -- supervisor -----------------------------------------------------------------
            reason = None
            if sigs.name is not None:
                reason = f"interrupted by {sigs.name}"
                t_detect = sigs.t_s
            elif not link.alive:
                reason = f"link lost: {link.lost_reason}"
                t_detect = now
            elif self._watchdog is not None and self._watchdog.stall is not None:
                reason, t_detect = self._watchdog.stall.describe(), self._watchdog.stall.t_detect_s
            else:
                # the vehicle's own takeoff (spool-up, ramp) has its own budget: the transit clock
                # starts when the policy takes over
                t_transit = 0.0 if mode == "takeoff" else t_rel - getattr(self, "_takeoff_s", 0.0)
                reason = sup.check(now, s, missed_in_row, t_flight_s=t_rel, target_reached=reached, t_transit_s=t_transit) \
                    if sup.state in (State.FLYING, State.LANDING) else None
                t_detect = now
                if reason is None and self.mocap is not None and sup.state in (State.FLYING, State.LANDING):
                    reason = sup.check_tracking(now, self.mocap.lost_reason(now))
                    self._tracking_lost = reason is not None
            if reason is not None:
                self._record_transitions(n_tr)
                return self._failsafe_and_finish(sigs, status, cpu0, wall0, rows, reason, t_detect, tel=tel)
            # -- phase ----------------------------------------------------------------------
            if mode == "takeoff" and s.pos_w[2] >= plan.handover_z:
                mode, t_ref0 = "policy", now
                log.write({"type": "phase", "t": self._t(), "phase": "policy", "takeoff_s": t_rel})
                self._takeoff_s = t_rel
                ref = self._reference(plan, s.pos_w)
            takeoff_budget_s = link.takeoff_budget_s(plan.handover_z - plan.ground_z, CLIMB_MPS)
            if mode == "takeoff" and t_rel > takeoff_budget_s:
                self._record_transitions(n_tr)
                return self._failsafe_and_finish(
                    sigs, status, cpu0, wall0, rows,
                    f"assisted takeoff did not reach z={plan.handover_z:.2f} m in {takeoff_budget_s:.1f} s", now, tel=tel)
            if mode == "policy":
                phase = ref.phase(now - t_ref0)
                if phase in ("land", "ground") and sup.state == State.FLYING:
                    sup.land(now, f"hover of {ref.hover_s:.1f} s complete, landing")
                if phase == "ground":
                    if not self.cfg.arm:
                        link.stop_motors()
                        sup.landed(time.monotonic(), "dry run complete, nothing was sent")
                        self._record_transitions(n_tr)
                        break
                    # blocks until the vehicle disarms; each turn of its wait kicks the watchdog
                    landing = link.land_on_vehicle(float(s.pos_w[2] - plan.ground_z), alive=self._watchdog.kick)
                    if landing is not None:  # the vehicle's own landing mode, to disarmed by its land detector
                        self._landing = landing
                        log.write({"type": "landing", "t": self._t(), **landing})
                        if not landing["disarmed"]:
                            self._record_transitions(n_tr)
                            return self._failsafe_and_finish(
                                sigs, status, cpu0, wall0, rows,
                                f"{landing['mode']} did not disarm within {landing['budget_s']:.1f} s", time.monotonic(),
                                tel=link.telemetry.latest())
                        sup.landed(time.monotonic(), f"disarmed by {landing['disarmed_by'] or 'the vehicle'}")
                        self._record_transitions(n_tr)
                        break
                    mode, t_touchdown0, hold_xy = "touchdown", now, None
            if mode == "touchdown":
                if s.pos_w[2] - plan.ground_z < GROUND_TOUCH_M or now - t_touchdown0 > TOUCHDOWN_TIMEOUT_S:
                    link.stop_motors()
                    link.disarm()
                    sup.landed(time.monotonic(), "landed, motors stopped")
                    self._record_transitions(n_tr)
                    break
            if mode != "policy":  # takeoff or touch-down on the vehicle's own stabilization
                vz = CLIMB_MPS if mode == "takeoff" else -SINK_MPS
                if hold_xy is None:
                    hold_xy = (plan.start_w if mode == "takeoff" else s.pos_w)[:2].copy()
                sent = link.assist(vz, tel, hold_xy)
                t_send = time.monotonic()
                met = t_send <= deadline
                missed_in_row = 0 if met else missed_in_row + 1
                target = np.array([plan.start_w[0], plan.start_w[1], plan.handover_z]) if mode == "takeoff" \
                    else np.array([s.pos_w[0], s.pos_w[1], plan.ground_z])
                row = self._row(sched.k, t_rel, mode, fresh, tel, s, target, None, None, sent, t_send, None, None, met,
                                missed_in_row)
                self._after_tick(row, rows, sched, fresh, tel, status, link, n_tr)
                n_tr = len(sup.transitions)
                missed_in_row += sched.skipped
                sched.skipped = 0
                continue
            target = ref.at(now - t_ref0)
            # -- policy ---------------------------------------------------------------------
            if spec.uses_position_integral:  # advanced once per policy tick, as in training
                pos_integral = integrate_position_error(pos_integral, s.pos_w[None], target, spec)
            if states is None:
                states = start_state_history(s.vel_w[None], s.omega_b[None], spec)
            obs = observe(s.pos_w[None], s.vel_w[None], s.quat_wb[None], s.omega_b[None], target,
                          history, spec, position_error_integral=pos_integral, state_history=states)[0]
            states = push_state_history(states, s.vel_w[None], s.omega_b[None])
            t_inf0 = time.monotonic()
            try:
                action = np.asarray(policy.act(obs), dtype=np.float64)
                if not np.all(np.isfinite(action)):
                    raise ValueError("policy returned a non-finite action")
                cmd = act_to_command(action[None], spec, vehicle)
            except (QuadhilError, ValueError) as exc:
                self._record_transitions(n_tr)
                return self._failsafe_and_finish(sigs, status, cpu0, wall0, rows,
                                                 f"non-finite observation or action: {exc}", time.monotonic(),
                                                 tel=tel)
            t_inf1 = time.monotonic()
            sent = link.send(cmd)
            t_send = time.monotonic()
            history = push_action_history(history, action[None])
            met = t_send <= deadline
            missed_in_row = 0 if met else missed_in_row + 1
            row = self._row(sched.k, t_rel, phase, fresh, tel, s, target, obs, action, sent, t_send,
                            t_inf1 - t_inf0, t_send - t_inf1, met, missed_in_row)
            self._after_tick(row, rows, sched, fresh, tel, status, link, n_tr)
            n_tr = len(sup.transitions)
            missed_in_row += sched.skipped
            sched.skipped = 0
        return self._finish(rows, cpu0, wall0)

    def _row(self, k, t_rel, phase, fresh, tel, s, target, obs, action, sent, t_send, infer_s, send_s, met,
             missed_in_row) -> dict:
        row = self._tick_row(k, t_rel, phase, fresh, tel, s, target, obs, action, sent, t_send, infer_s, send_s, met,
                             missed_in_row)
        if self.mocap is not None:  # the external pose the vehicle was given last, and its age
            pose = self.mocap.latest
            row["mocap_pos"] = None if pose is None else pose.pos_w
            row["mocap_quat"] = None if pose is None else pose.quat_wb
            row["mocap_age_ms"] = None if pose is None else 1e3 * (t_send - pose.t_s)
        return row

    def _tick_row(self, k, t_rel, phase, fresh, tel, s, target, obs, action, sent, t_send, infer_s, send_s, met,
                  missed_in_row) -> dict:
        return {
            "type": "tick", "k": k, "t": t_rel, "state": self.sup.state.value, "phase": phase,
            "fresh": fresh, "t_vehicle": tel.t_vehicle_s,
            "pos": s.pos_w, "vel": s.vel_w, "quat": s.quat_wb, "omega": s.omega_b, "target": target,
            "obs": obs, "action": action, "cmd": sent,
            "state_age_ms": 1e3 * (t_send - tel.t_arrival_s),
            "latency_ms": 1e3 * (t_send - tel.t_arrival_s) if fresh else None,
            "infer_ms": None if infer_s is None else 1e3 * infer_s, "send_ms": None if send_s is None else 1e3 * send_s,
            "deadline_met": met, "missed_in_row": missed_in_row,
        }

    def _after_tick(self, row, rows, sched, fresh, tel, status, link, n_tr) -> None:
        """Log the tick, record transitions, update the status line, move the schedule."""
        self._watchdog.kick()
        self.log.write(row)
        rows.append({k: row[k] for k in ("phase", "t", "pos", "target", "state_age_ms", "latency_ms",
                                          "infer_ms", "deadline_met")})
        self._record_transitions(n_tr)
        if status.enabled and sched.k % 10 == 0:
            recent = rows[-int(self.rate_hz):]
            span = recent[-1]["t"] - recent[0]["t"] if len(recent) > 1 else 0.0
            loop_hz = (len(recent) - 1) / span if span > 0 else 0.0
            fresh_pct = 100.0 * sum(r["latency_ms"] is not None for r in recent) / len(recent)
            err = float(np.linalg.norm(np.asarray(row["pos"]) - np.asarray(row["target"])))
            status.update(
                f"{self.sup.state.value} {row['phase']} t={row['t']:.1f}s err={100 * err:.1f}cm {loop_hz:.0f}Hz "
                f"lat={row['latency_ms'] or 0.0:.2f}ms age={row['state_age_ms']:.1f}ms "
                f"miss={sum(not r['deadline_met'] for r in rows)} link={'ok' if link.alive else 'LOST'} "
                f"fresh={fresh_pct:.0f}%")
        if fresh:
            sched.lock_phase(tel.t_arrival_s)
        sched.advance(time.monotonic())

    def _failsafe_and_finish(self, sigs, status, cpu0, wall0, rows, reason, t_detect, tel=None) -> FlightResult:
        """Enter FAILSAFE, carry out the action at once and to completion, then report."""
        sup, link = self.sup, self.link
        n_tr = len(sup.transitions)
        now = time.monotonic()
        s = self._sample(tel if tel is not None else link.telemetry.latest(), now)
        sup.failsafe(now, reason)
        action = failsafe_action(self.vehicle.firmware, s, self.limits, tracking_lost=self._tracking_lost)
        self._record_transitions(n_tr)
        t_first = None
        t_fs0 = time.monotonic()
        done = False
        steps = 0
        while not done:
            tick0 = time.monotonic()
            if self._watchdog is not None:
                self._watchdog.kick()
            done = link.failsafe_step(action.value, tick0 - t_fs0, link.telemetry.latest())
            if t_first is None:
                t_first = time.monotonic()
            steps += 1
            if not done:
                time.sleep(max(0.0, self.period_s - (time.monotonic() - tick0)))
            if time.monotonic() - t_fs0 > 5.0:
                link.stop_motors()
                break
        response_ms = 1e3 * (t_first - t_detect) if t_detect is not None else None
        self.log.write({"type": "failsafe", "t": self._t(), "reason": reason, "action": action.value,
                        "t_detect": t_detect - self._t0, "t_first_action": t_first - self._t0,
                        "response_ms": response_ms, "steps": steps, "dry_run": not self.cfg.arm})
        result = self._finish(rows, cpu0, wall0)
        result.failsafe_action = action.value
        result.failsafe_response_ms = response_ms
        self.log.write({"type": "summary", **result.as_dict()})
        return result

    def _finish(self, rows: list[dict], cpu0: float, wall0: float) -> FlightResult:
        hover = [r for r in rows if r["phase"] == "hover"]
        if hover:
            t_h0 = hover[0]["t"]
            hover = [r for r in hover if r["t"] - t_h0 >= SETTLE_S] or hover
        rmse = None
        if hover and self.cfg.arm:
            err = np.array([np.asarray(r["pos"]) - np.asarray(r["target"]) for r in hover])
            rmse = float(np.sqrt(np.mean(np.sum(err * err, axis=1))))
        lat = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
        wall = time.monotonic() - wall0
        result = FlightResult(
            log=str(self.log.path), final_state=self.sup.state.value, failsafe=self.sup.failsafe_reason,
            failsafe_action=None, failsafe_response_ms=None, refused=list(self.sup.refusals), ticks=len(rows),
            rmse_m=rmse,
            deadline_miss_rate=(sum(not r["deadline_met"] for r in rows) / len(rows)) if rows else 0.0,
            latency_p50_ms=_pct(lat, 50), latency_p99_ms=_pct(lat, 99),
            state_age_p99_ms=_pct([r["state_age_ms"] for r in rows], 99),
            infer_p99_ms=_pct([r["infer_ms"] for r in rows if r["infer_ms"] is not None], 99),
            fresh_rate=(len(lat) / len(rows)) if rows else 0.0, rate_hz=self.rate_hz, dry_run=not self.cfg.arm,
            cpu_percent=100.0 * (time.process_time() - cpu0) / wall if wall > 0 else None,
            extra=self.preflight_extra(),
        )
        result.extra["takeoff_s"] = getattr(self, "_takeoff_s", None)
        result.extra["landing"] = getattr(self, "_landing", None)
        if self.mocap is not None:
            result.extra["mocap"] = self.mocap.stats()
        for t_s, severity, text in list(self.link.statustexts):
            self.log.write({"type": "statustext", "t": t_s - self._t0, "severity": severity, "text": text})
        if self.sup.failsafe_reason is None:
            self.log.write({"type": "summary", **result.as_dict()})
        return result


def fly(cfg: FlyConfig) -> FlightResult:
    """Run one flight (see :class:`Flight`)."""
    return Flight(cfg).run()

