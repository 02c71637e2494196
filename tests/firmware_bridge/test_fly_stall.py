"""A bridge whose control loop stops turning says so and ends, in a real flight: the bridge flies the
Crazyflie twin through the real cflib, in this process, and the test wedges cflib the way its
link-error deadlock did (its send lock held by another thread: cflib 0.1.34,
firmware_bridge.links.crazyflie.bound_ping_thread_stop), so the bridge's loop blocks inside cflib's
``send_packet``. The loop watchdog (firmware_bridge.loop_watchdog) reports it in the flight log at
once; ``quadhil fly`` then exits (status 4), an embedding program gets a failsafe when the loop
turns again.

Every wait is bounded; the flight runs in a daemon thread, the twin is ended by pid."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import firmware_bridge.loop_watchdog as watchdog_mod
from firmware_bridge.flight import Flight, FlyConfig
from firmware_bridge.flightlog import FlightLog
from tests.firmware_bridge.bridge_support import cf_policy, crazyflie_twin, px4_policy  # noqa: F401 - fixture

STALL_TIMEOUT_S = 0.5
WEDGE_S = 1.5
WEDGE_AFTER_S = 6.0  # after the first packet: connect, preflight and takeoff are over by then


def _wait_for_policy_ticks(log_dir: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in log_dir.glob("*.jsonl"):
            ticks = FlightLog.read(p).ticks
            if len(ticks) > 50 and ticks[-1]["phase"] not in ("takeoff",):
                return
        time.sleep(0.05)
    raise AssertionError(f"the flight did not reach the policy within {timeout_s} s")


def _fly_and_wedge(model: Path, uri: str, log_dir: Path, exit_on_stall: bool,
                   on_stall_exit=None) -> tuple[Flight, dict]:
    """Fly, wedge cflib's send lock for WEDGE_S once the policy flies, release it; return the
    flight and {'result' | 'error'} of its run (the run is over when this returns)."""
    cfg = FlyConfig(model=str(model), link=uri, target_w=(0.0, 0.0, 1.0), takeoff_height_m=1.0, duration_s=8.0,
                    arm=True, log_dir=str(log_dir), status=False, mcap=False, realtime=True,
                    stall_timeout_s=STALL_TIMEOUT_S, exit_on_stall=exit_on_stall)
    flight = Flight(cfg)
    flight.on_stall_exit = on_stall_exit
    out: dict = {}

    def run() -> None:
        try:
            out["result"] = flight.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            out["error"] = exc

    # realtime: Flight.run raises its own thread's priority (and cflib's threads, started from it,
    # inherit it), as `quadhil fly --realtime` does in the other flight tests
    t = threading.Thread(target=run, daemon=True)
    t.start()
    _wait_for_policy_ticks(log_dir)
    send_lock = flight.link._cf._send_lock  # the real cflib object's lock around every send
    assert send_lock.acquire(timeout=2.0)
    try:
        time.sleep(WEDGE_S)
    finally:
        send_lock.release()
    t.join(30.0)
    assert not t.is_alive(), "the flight did not end after the wedge was released"
    return flight, out


def test_a_loop_wedged_in_cflib_is_logged_at_once_and_ends_in_failsafe(cf_policy, tmp_path):  # noqa: F811
    with crazyflie_twin() as twin:
        flight, out = _fly_and_wedge(cf_policy, twin.uri, tmp_path, exit_on_stall=False)
    assert "error" not in out, out
    result = out["result"]
    assert result.failsafe and result.failsafe.startswith("control loop stalled for "), result.failsafe
    assert "send_packet" in result.failsafe  # where the loop was stuck
    log = FlightLog.read(result.log)
    stalls = [e for e in log.events if e.get("type") == "stall"]
    assert len(stalls) == 1
    assert STALL_TIMEOUT_S < stalls[0]["stalled_s"] < WEDGE_S
    assert any("cflib" in frame for frame in stalls[0]["where"]), stalls[0]["where"]
    # written while the loop was still stuck: before the failsafe that followed its release
    assert stalls[0]["t"] < log.failsafes[-1]["t_detect"] + 1e-9
    assert log.transitions[-1]["to"] == "FAILSAFE"


def test_quadhil_fly_exits_with_status_4_and_a_summary_when_its_loop_stalls(cf_policy, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    exits: list[int] = []
    summaries: list[dict] = []
    monkeypatch.setattr(watchdog_mod, "_exit_process", exits.append)  # the real one ends pytest
    with crazyflie_twin() as twin:
        _fly_and_wedge(cf_policy, twin.uri, tmp_path, exit_on_stall=True, on_stall_exit=summaries.append)
    assert exits == [watchdog_mod.EXIT_STALLED]
    assert len(summaries) == 1 and summaries[0]["final_state"] == "stalled"
    assert summaries[0]["failsafe"].startswith("control loop stalled")
    log = FlightLog.read(summaries[0]["log"])
    assert log.summary is not None and log.summary["final_state"] == "stalled"  # the log was closed on it
    assert [e["type"] for e in log.events if e.get("type") == "stall"] == ["stall"]


def test_quadhil_fly_takes_the_stall_timeout():
    import argparse

    from firmware_bridge import cli_fly

    parser = argparse.ArgumentParser()
    cli_fly.configure(parser)
    args = parser.parse_args(["--model", "m.tflite", "--link", "udp://127.0.0.1:1", "--stall-timeout", "1.5"])
    assert args.stall_timeout == 1.5
    assert parser.parse_args(["--model", "m.tflite", "--link", "udp://127.0.0.1:1"]).stall_timeout == \
        watchdog_mod.STALL_TIMEOUT_S


def test_a_quadhil_fly_process_wedged_in_cflib_for_good_exits_4_with_its_summary(cf_policy, tmp_path):  # noqa: F811
    """The process a user runs, not the loop in this one: cflib wedges mid-flight and never lets go
    (tests/firmware_bridge/wedged_fly.py), so the loop's thread cannot unwind; the watchdog ends
    the process itself, with status 4, the JSON summary as stdout's last line and the log closed."""
    import sys

    from tests.firmware_bridge.bridge_support import fly_cmd, run_fly

    user_cmd = fly_cmd(cf_policy, "URI", tmp_path, "--target", "0,0,1", "--takeoff-height", "1", "--duration", "10",
                       "--stall-timeout", str(STALL_TIMEOUT_S))
    assert user_cmd[1:3] == ["-m", "quadhil"]
    with crazyflie_twin() as twin:
        args = [twin.uri if a == "URI" else a for a in user_cmd[3:]]
        rc, summary, err = run_fly([sys.executable, "-m", "tests.firmware_bridge.wedged_fly",
                                    f"cflib:{WEDGE_AFTER_S}", *args], timeout_s=60.0)
    assert rc == watchdog_mod.EXIT_STALLED, err
    assert summary is not None and summary["final_state"] == "stalled", (summary, err)
    assert summary["failsafe"].startswith("control loop stalled for "), summary["failsafe"]
    log = FlightLog.read(summary["log"])
    assert log.summary is not None and log.summary["final_state"] == "stalled"
    stalls = [e for e in log.events if e.get("type") == "stall"]
    assert len(stalls) == 1
    # where it hung: the link's send, inside (the patched) cflib Crazyflie.send_packet
    assert any(frame.endswith(" in send_packet") for frame in stalls[0]["where"]), stalls[0]["where"]
    assert log.transitions[-1]["to"] == "FLYING"  # wedged mid-flight; the vehicle's own failsafe flies from here


def test_a_bridge_wedged_while_px4_lands_itself_exits_4_and_px4_goes_on_landing(px4_policy, tmp_path):  # noqa: F811
    """The bridge hands the x500 to PX4's AUTO.LAND and waits for it to disarm; wedged in pymavlink
    there (its LAND request never returns), it is caught like a wedged loop: status 4, summary
    and log closed on 'stalled'."""
    import sys

    from tests.firmware_bridge.bridge_support import fly_cmd, px4_twin, run_fly

    user_cmd = fly_cmd(px4_policy, "URI", tmp_path, "--target", "0,0,1", "--takeoff-height", "1", "--duration", "3",
                       "--stall-timeout", str(STALL_TIMEOUT_S))
    with px4_twin() as twin:
        args = [twin.uri if a == "URI" else a for a in user_cmd[3:]]
        rc, summary, err = run_fly([sys.executable, "-m", "tests.firmware_bridge.wedged_fly", "mavlink-land", *args],
                                   timeout_s=90.0)
    assert rc == watchdog_mod.EXIT_STALLED, err
    assert summary is not None and summary["final_state"] == "stalled", (summary, err)
    log = FlightLog.read(summary["log"])
    assert log.summary is not None and log.summary["final_state"] == "stalled"
    stalls = [e for e in log.events if e.get("type") == "stall"]
    assert len(stalls) == 1
    assert any(" in land_on_vehicle" in frame for frame in stalls[0]["where"]), stalls[0]["where"]
    assert log.transitions[-1]["to"] == "LANDING"
