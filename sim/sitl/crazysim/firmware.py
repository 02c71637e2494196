"""Start and stop CrazySim firmware processes (``cf2``), one per drone, ended by pid.

argv: ``cf2 PORT ADDR`` (CrazySim src/init/main_sitl.c: ``argc == 3`` -> ``crtp_port =
atoi(argv[1]); address_host = argv[2]``). Like CrazySim's launch scripts
(simulator_files/*/launch/sitl_*.sh: ``cd build/N; cf2 $((19950+N)) > out.log 2> error.log``) each
instance runs in its own directory with its output in ``out.log`` / ``error.log``. The physics
side must already listen when ``cf2`` starts: it sends its 0xF3 once and then blocks in
``recvfrom`` (socketlink.c), so a lost first handshake would hang it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sim.errors import QuadhilError
from sim.sitl.processes import stop_process

REALTIME_NICE = -10


def check_firmware(path: str) -> Path:
    """``path`` as an executable file, or QuadhilError naming the problem."""
    p = Path(path).expanduser()
    if not p.exists():
        raise QuadhilError(f"--firmware {path}: no such file (build CrazySim's firmware: see docs/sitl-crazyflie.md)")
    if not p.is_file() or not os.access(p, os.X_OK):
        raise QuadhilError(f"--firmware {path}: not an executable file")
    return p.resolve()


def firmware_argv(binary: Path, port: int, host: str) -> list[str]:
    """The command line of one ``cf2`` instance talking to the physics side at host:port."""
    return [str(binary), str(port), host]


def _lower_niceness() -> None:  # runs in the child before exec: cf2's threads inherit it
    try:
        os.setpriority(os.PRIO_PROCESS, 0, REALTIME_NICE)
    except (PermissionError, OSError):
        pass


@dataclass
class FirmwareProcesses:
    """The ``cf2`` processes of one run; ``stop()`` ends each by pid (SIGTERM, then SIGKILL)."""

    binary: Path
    work_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, ports: list[int], host: str, realtime: bool = False) -> None:
        """One ``cf2 PORT HOST`` per port, in ``work_dir/N``. ``realtime`` asks for nice -10
        (not SCHED_FIFO: a FreeRTOS POSIX port may spin, and a spinning FIFO task would starve
        the machine)."""
        for i, port in enumerate(ports):
            d = self.work_dir / str(i)
            d.mkdir(parents=True, exist_ok=True)
            with open(d / "out.log", "wb") as out, open(d / "error.log", "wb") as err:
                self.procs.append(subprocess.Popen(firmware_argv(self.binary, port, host), cwd=d, stdout=out,
                                                   stderr=err, stdin=subprocess.DEVNULL,
                                                   preexec_fn=_lower_niceness if realtime else None))

    def exited(self) -> list[tuple[int, int]]:
        """(instance, exit code) of every process that is no longer running."""
        return [(i, p.returncode) for i, p in enumerate(self.procs) if p.poll() is not None]

    def pids(self) -> list[int]:
        """Process ids, instance order."""
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        """End every process by pid; idempotent."""
        for p in self.procs:
            stop_process(p, timeout_s=3.0)
