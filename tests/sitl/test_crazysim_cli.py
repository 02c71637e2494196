"""``quadhil sitl crazyflie-fw`` as a process: start-up lines, --json figures, and --firmware
starting and stopping one firmware per drone (here the scripted peer, which takes cf2's argv)."""

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sim.sitl.processes import stop_process, twin_command
from tests.sitl.crazysim_helpers import connected_peer, read_startup, wait_for


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(twin_command("crazyflie-fw", "--firmware-port", "0", "--cflib-port", "0", *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=15)
    finally:
        stop_process(proc)
    return out.decode(), err.decode()


def test_it_prints_each_drones_ports_then_ready_and_ends_with_json_figures_on_sigterm():
    proc = _start("--instances", "2", "--json")
    try:
        drones, uri = read_startup(proc, 30.0)
        assert [d["index"] for d in drones] == [0, 1]
        assert uri == drones[0]["uri"] and uri.startswith("udp://127.0.0.1:")
        with connected_peer(drones[0]["firmware_port"]) as p0, connected_peer(drones[1]["firmware_port"]) as p1:
            wait_for(lambda: p0.log.imu_samples > 200 and p1.log.imu_samples > 200, 10.0, "both sensor streams")
    finally:
        out, err = _finish(proc)
    assert proc.returncode == 0, err
    figures = json.loads(out.strip().splitlines()[-1])
    assert [d["handshakes"] for d in figures["drones"]] == [1, 1]
    assert all(d["imu_sent"] > 200 for d in figures["drones"])
    assert figures["ticks"] > 0 and 0.0 <= figures["late_tick_fraction"] <= 1.0


@pytest.fixture
def peer_as_cf2(tmp_path: Path) -> Path:
    """An executable that runs the scripted peer with the argv quadhil gives cf2 (PORT ADDR)."""
    exe = tmp_path / "cf2"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m sim.sitl.crazysim.peer \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_with_firmware_it_starts_one_process_per_drone_reports_ready_after_calibration_and_stops_them(peer_as_cf2):
    work = Path(tempfile.mkdtemp(prefix="quadhil-test-cf2-"))
    proc = _start("--instances", "2", "--firmware", str(peer_as_cf2), "--work-dir", str(work), "--json")
    try:
        drones, _ = read_startup(proc, 60.0)  # ready only once both firmwares found their gyro bias
        assert len(drones) == 2
    finally:
        out, err = _finish(proc)
    assert proc.returncode == 0, err
    figures = json.loads(out.strip().splitlines()[-1])
    assert all(d["ready"] for d in figures["drones"])
    for pid in figures["firmware"]["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # ended by the server on exit
    for i, d in enumerate(drones):
        log = (work / str(i) / "out.log").read_text()
        assert "connected" in log  # the peer got PORT ADDR in cf2's order and shook hands


def test_a_firmware_that_exits_is_reported_with_its_log_directory(tmp_path):
    exe = tmp_path / "cf2"
    exe.write_text("#!/bin/sh\necho boom >&2\nexit 7\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    proc = _start("--firmware", str(exe), "--work-dir", str(tmp_path / "w"))
    proc.wait(timeout=30)
    out, err = _finish(proc)
    assert proc.returncode == 2
    assert "cf2 instance 0 exited with 7" in err and str(tmp_path / "w") in err


@pytest.mark.parametrize("args, message", [
    (("--instances", "0"), "--instances must be 1..10"),
    (("--firmware", "/nonexistent/cf2"), "--firmware /nonexistent/cf2: no such file"),
    (("--pose-rate", "0"), "--pose-rate must be 1..1000 Hz"),
])
def test_bad_input_is_refused_with_a_message_naming_the_problem(args, message):
    proc = _start(*args)
    proc.wait(timeout=30)
    out, err = _finish(proc)
    assert proc.returncode == 2
    assert message in err


def test_the_bench_reports_lateness_imu_rate_and_cpu_per_drone_as_one_json_line():
    out = subprocess.run([sys.executable, "-m", "quadhil", "bench", "sitl-fw", "--instances", "1", "--duration", "1.5",
                          "--json"], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["firmware"] == "scripted peer"
    assert len(figures["imu_rate_hz"]) == 1 and 0 < figures["imu_rate_hz"][0] <= 1001
    assert 0.0 <= figures["late_tick_fraction"] <= 1.0
    assert figures["server_cpu_fraction_per_drone"] > 0
