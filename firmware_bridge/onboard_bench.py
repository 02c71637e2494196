"""``quadhil bench onboard``: flash and a cycle estimate of the onboard policy on the Crazyflie's MCU.

The app's portable C (``crazyflie_app/src/quadhil_nn.c`` with one ``policy_weights.h``) is
cross-compiled for the Crazyflie 2.x's STM32F405 (Cortex-M4F, 168 MHz) with the firmware's own
flags at ``-O2`` (or ``--opt``), measured with ``arm-none-eabi-size``, and disassembled with
``arm-none-eabi-objdump``. A static estimate of the cycles of one policy tick
(``qh_integrate_position_error`` + ``qh_observe`` + ``qh_forward`` + four ``qh_action_to_pwm_ratio``)
follows from the disassembly:

* the C loops of ``qh_forward`` are found in the disassembly by what they hold (the
  multiply-accumulate loop: a VMUL/VFMA/VMLA; the normalization loop: a VDIV; the bias copy:
  integer loads/stores only; the row loop: the cheapest other loop whose way around passes the MAC
  loop's head; the activation loop: one whose dearest way around loads and stores a float with no
  arithmetic; by path, not by address range, as -Os rotates loops) and each is priced per
  iteration with the Cortex-M4 cycle counts below along the path it takes while looping (back
  edge and forward branches inside it taken, branches out of it not; the row loop: its dearest way
  around, the MAC loop's instructions excepted); iterations come from the network's sizes in
  ``policy_weights.h``;
* ``tanhf`` (newlib's libm for this multilib, with what it calls: ``expm1f``, ``fabsf``, and on the
  overflow path ``__math_oflowf`` ... ``__errno`` from libc; none with a loop, checked) is priced as
  the longest path through its branches: an upper bound per call;
* the activation loop is priced per output as its dearest iteration (the longest path once around
  it, the ``tanhf`` call counted above), the rest of ``qh_forward`` as all its instructions once
  per layer, ``qh_observe`` / the PWM mapping / ``qh_integrate_position_error`` as all their
  instructions once per observation element / motor / axis: upper bounds, small next to the MACs.

Cycle counts: ARM Cortex-M4 Technical Reference Manual (ARM DDI 0439B), 3.3.1 "Cortex-M4
instructions and their cycle counts" (integer) and 7.2.3 "FPU instruction set" (table 7-1), as
reproduced in TI SWCU192 tables 3-25 and 3-27: VLDR/VSTR 2, VLDM/VSTM/VPUSH/VPOP 1+N, VADD/VSUB/
VMUL/VNEG/VABS/VCMP/VCVT/VMRS 1, VMLA/VMLS/VFMA/VFMS 3, VDIV/VSQRT 14, VMOV core<->FPU 2 (1 for an
immediate or register copy), LDR/STR 2, LDM/STM/PUSH/POP 1+N, B/BL/BX and taken conditional
branches 1+P, not-taken 1, other ALU 1. P, the pipeline refill, is 1..3 cycles: the estimate is
reported for both ends. These are zero-wait-state counts; the weights are ``static const`` and
live in flash, which the STM32F405 reads at 168 MHz with 5 wait states through its ART accelerator
(RM0090 section 3: 128-bit lines, 8 D-Code cache lines): ``flash_wait_cycles`` adds 5 cycles per
16-byte line of weights read once per tick (the kernels are streamed in order, each line used for
four consecutive MACs, far more than 8 lines so the D-Code cache never holds a layer). It is an
estimate, not a measurement: no Crazyflie was timed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

APP_SRC = Path(__file__).resolve().parent / "crazyflie_app" / "src"
CPU_HZ = 168e6  # STM32F405RG of the Crazyflie 2.x (Bitcraze datasheet), HCLK
FLASH_WAIT_STATES = 5  # RM0090 section 3.5.1: 150 < HCLK <= 168 MHz at 2.7-3.6 V
FLASH_LINE_BYTES = 16  # 128-bit flash read (RM0090 section 3.5.2, ART accelerator)
# the firmware's code-generation flags (crazyflie-firmware Makefile, as in check_against_firmware.sh)
ARM_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-fno-math-errno",
             "-std=gnu11", "-ffunction-sections", "-fdata-sections")
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-objdump")
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+([a-z][a-z0-9.]*)\s*(.*)$")
_COND = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le")


@dataclass(frozen=True)
class Insn:
    """One disassembled instruction: address, mnemonic without width suffix, operands."""

    addr: int
    op: str
    args: str
    local: bool = True  # False: a branch to another symbol (a tail call), not inside this function

    @property
    def branch_target(self) -> int | None:
        """Target address of a direct branch (b, b<cc>, cbz, cbnz) inside this function, else None."""
        if not self.local:
            return None
        if self.op == "b" or (self.op.startswith("b") and self.op[1:] in _COND) or self.op in ("cbz", "cbnz"):
            m = re.search(r"\b([0-9a-f]+) <", self.args)
            return int(m.group(1), 16) if m else None
        return None


def parse_functions(objdump_text: str) -> dict[str, list[Insn]]:
    """``objdump -d --no-show-raw-insn`` text -> {function: instructions} (literal pools dropped)."""
    funcs: dict[str, list[Insn]] = {}
    current = name = None
    for line in objdump_text.splitlines():
        head = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line.strip())
        if head:
            name = head.group(1)
            current = funcs.setdefault(name, [])
            continue
        m = _LINE.match(line)
        if current is not None and m and not m.group(2).startswith("."):
            op = m.group(2).split(".")[0]
            args = m.group(3).split("@")[0].strip()
            sym = re.search(r"<([^>+]+)", args)
            current.append(Insn(int(m.group(1), 16), op, args, local=sym is None or sym.group(1) == name))
    return funcs


def _reglist_size(args: str) -> int:
    m = re.search(r"\{([^}]*)\}", args)
    if not m:
        return 1
    n = 0
    for part in m.group(1).split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            n += (int(b[1:]) - int(a[1:]) + 1) * (2 if a.startswith("d") else 1)
        elif part:
            n += 2 if part.startswith("d") else 1
    return n


def insn_cycles(insn: Insn, refill: int, taken: bool = False) -> int:
    """Cortex-M4 cycles of one instruction (TRM tables, zero wait states; see the module docstring).
    ``taken``: a conditional branch that is taken; ``refill``: P, 1..3."""
    op, args = insn.op, insn.args
    if op in ("vldr", "vstr"):
        return 2
    if op.startswith(("vldm", "vstm", "vpush", "vpop")):
        return 1 + _reglist_size(args)
    if op.startswith(("vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms")):
        return 3
    if op.startswith(("vdiv", "vsqrt")):
        return 14
    if op.startswith("vmov"):
        return 2 if re.search(r"\b(r\d+|ip|lr|sl|fp)\b", args) else 1
    if op.startswith("v"):
        return 1  # vadd, vsub, vmul, vneg, vabs, vcmp(e), vcvt, vmrs, vmsr
    if op.startswith(("ldm", "stm", "push", "pop")):
        return 1 + _reglist_size(args) + (refill if "pc" in args else 0)
    if op.startswith(("ldr", "str")):
        return 2
    if op in ("bl", "blx", "bx") or op == "b":
        return 1 + refill
    if insn.branch_target is not None:  # b<cc>, cbz, cbnz
        return 1 + refill if taken else 1
    if op in ("sdiv", "udiv"):
        return 12
    return 1


def _loops(insns: list[Insn]) -> list[tuple[int, int, int]]:
    """(start index, end index inclusive, back-edge index) of every backward branch's range."""
    index = {i.addr: k for k, i in enumerate(insns)}
    out = []
    for k, i in enumerate(insns):
        t = i.branch_target
        if t is not None and t <= i.addr and t in index:
            out.append((index[t], k, k))
    return out


def _iteration_cycles(insns: list[Insn], loop: tuple[int, int, int], refill: int) -> tuple[int, list[Insn]]:
    """One iteration of an innermost ``loop`` along the path the loop runs while it keeps looping:
    from its head, a conditional branch forward inside the loop is taken (the loop condition of a
    rotated loop, -Os), one leaving the loop is not, and the back edge closes the iteration.
    Returns the cycles and the instructions on that path."""
    start, end, back = loop
    index = {i.addr: k for k, i in enumerate(insns)}
    cycles, path, k = 0, [], start
    while len(path) <= end - start + 1:
        ins = insns[k]
        path.append(ins)
        t = ins.branch_target
        if k == back:
            return cycles + insn_cycles(ins, refill, taken=True), path
        if t is not None and t > ins.addr and t in index and index[t] <= end:
            cycles += insn_cycles(ins, refill, taken=True)
            k = index[t]
            continue
        cycles += insn_cycles(ins, refill, taken=False)
        k += 1
    raise RuntimeError(f"no path around the loop at {insns[start].addr:#x}")


def _longest_iteration(insns: list[Insn], loop: tuple[int, int, int], loops, refill: int,
                       path_out: list | None = None, free: frozenset = frozenset()) -> int | None:
    """The dearest way once around ``loop``: the longest simple path from its head that ends taking
    its back edge, through its own instructions and code outside the ranges of ``loops`` (an
    out-of-line call site, as -O2 puts ``bl tanhf``); a call costs its ``bl`` only. None when there
    is no such path (a backward branch that is no loop: the return from out-of-line code).
    ``path_out``, when given, receives the indices of that path; instructions in ``free`` cost 0
    (priced elsewhere: the MAC loop's, on the path around the row loop)."""
    start, end, back = loop
    index = {i.addr: k for k, i in enumerate(insns)}
    in_loops = {k for s, e, _ in loops for k in range(s, e + 1)}
    allowed = set(range(start, end + 1)) | (set(range(len(insns))) - in_loops)
    best: int | None = None
    best_path: list = []

    def visit(k: int, cost: int, seen: list) -> None:
        nonlocal best, best_path
        ins = insns[k]
        t = ins.branch_target
        if k == back:
            total = cost + (0 if k in free else insn_cycles(ins, refill, taken=True))
            if best is None or total > best:
                best, best_path = total, list(seen)
            return
        nxt = []
        if t is not None and t in index:
            nxt.append((index[t], insn_cycles(ins, refill, taken=True)))
        if ins.op != "b" and not (ins.op.startswith("pop") and "pc" in ins.args) and ins.op != "bx":
            nxt.append((k + 1, insn_cycles(ins, refill)))
        for n, c in nxt:
            if n in allowed and n not in seen and n < len(insns):
                visit(n, cost + (0 if k in free else c), seen + [n])

    visit(start, 0, [start])
    if path_out is not None:
        path_out[:] = best_path
    return best


def _nested(loops, loop):
    s, e, _ = loop
    return [m for m in loops if m != loop and s <= m[0] and m[1] <= e]


def _acyclic(insns: list[Insn]) -> bool:
    """True when no backward branch lands inside a range it could loop over (a function without
    loops: every instruction runs at most once per call)."""
    index = {i.addr: k for k, i in enumerate(insns)}
    succ: dict[int, list[int]] = {}
    for k, i in enumerate(insns):
        nxt = []
        t = i.branch_target
        if t is not None and t in index:
            nxt.append(index[t])
        if i.op != "b" and not (i.op.startswith("pop") and "pc" in i.args) and i.op != "bx" and k + 1 < len(insns):
            nxt.append(k + 1)
        succ[k] = nxt
    state: dict[int, int] = {}

    def visit(k: int) -> bool:
        state[k] = 1
        for n in succ[k]:
            if state.get(n) == 1 or (n not in state and not visit(n)):
                return False
        state[k] = 2
        return True

    return all(visit(k) for k in range(len(insns)) if k not in state)


def longest_path_cycles(funcs, name: str, refill: int, _memo: dict | None = None) -> int:
    """Worst-case cycles of one call of a loop-free function: the longest path through its branches
    (taken: 1+P, not taken: 1), calls (``bl``) and tail calls priced as their callees' longest paths.
    ``funcs``: {name: instructions}, or a callable name -> instructions | None. Raises RuntimeError
    for a loop or a callee that cannot be found."""
    memo = {} if _memo is None else _memo
    if (name, refill) in memo:
        return memo[(name, refill)]
    insns = funcs(name) if callable(funcs) else funcs.get(name)
    if not insns:
        raise RuntimeError(f"{name} not in the disassembly")
    if not _acyclic(insns):
        raise RuntimeError(f"{name} has a loop: no static bound")
    index = {i.addr: k for k, i in enumerate(insns)}
    best: dict[int, int] = {}

    def callee(ins: Insn) -> int:
        sym = re.search(r"<([^>+]+)", ins.args)
        if sym is None:
            raise RuntimeError(f"indirect call in {name}: no static bound")
        return longest_path_cycles(funcs, sym.group(1), refill, memo)

    def walk(k: int) -> int:
        if k in best:
            return best[k]
        ins = insns[k]
        t = ins.branch_target
        ends = (ins.op.startswith("pop") and "pc" in ins.args) or ins.op == "bx" or \
            (ins.op.startswith("ldm") and "pc" in ins.args)
        if ins.op == "bl":
            cost = insn_cycles(ins, refill) + callee(ins) + (walk(k + 1) if k + 1 < len(insns) else 0)
        elif ins.op == "b" and not ins.local:  # tail call
            cost = insn_cycles(ins, refill) + callee(ins)
        elif ins.op == "b" and t is not None:
            cost = insn_cycles(ins, refill) + walk(index[t])
        elif t is not None:  # conditional
            cost = max(insn_cycles(ins, refill, taken=True) + walk(index[t]),
                       insn_cycles(ins, refill) + (walk(k + 1) if k + 1 < len(insns) else 0))
        elif ends or k + 1 >= len(insns):
            cost = insn_cycles(ins, refill)
        else:
            cost = insn_cycles(ins, refill) + walk(k + 1)
        best[k] = cost
        return cost

    memo[(name, refill)] = walk(0)
    return memo[(name, refill)]


def network_shape(weights_h: str) -> dict:
    """Layers (inputs, outputs, activation name), observation size, rate and vehicle of a policy_weights.h."""
    layers = [(int(a), int(b), c) for a, b, c in
              re.findall(r"^\s*\{(\d+)u, (\d+)u, QH_ACT_(\w+), qh_kernel_\d+, qh_bias_\d+\},", weights_h, re.M)]
    if not layers:
        raise RuntimeError("no qh_layers table in the weights (not written by quadhil export --format c?)")
    obs = int(re.search(r"#define QH_OBS_DIM (\d+)", weights_h).group(1))
    rate = float(re.search(r"#define QH_CONTROL_RATE_HZ ([0-9.e+-]+)f?", weights_h).group(1))
    vehicle = re.search(r'#define QH_POLICY_VEHICLE "([^"]*)"', weights_h).group(1)
    return {"layers": layers, "obs_dim": obs, "rate_hz": rate, "vehicle": vehicle}


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[:2000]}")
    return proc.stdout


def estimate(weights_h: Path, opt: str = "-O2", rate_hz: float | None = None) -> dict:
    """Flash and the per-tick cycle estimate of quadhil_nn.c with ``weights_h`` (see the module
    docstring). Raises RuntimeError when the cross tools fail."""
    gcc, size, objdump = (shutil.which(t) for t in TOOLS)
    text = Path(weights_h).read_text()
    shape = network_shape(text)
    with tempfile.TemporaryDirectory(prefix="quadhil-onboard-bench-") as tmp:
        stage = Path(tmp)
        shutil.copyfile(APP_SRC / "quadhil_nn.c", stage / "quadhil_nn.c")
        (stage / "policy_weights.h").write_text(text)
        obj = stage / "quadhil_nn.o"
        cflags = [*ARM_FLAGS, opt, "-Wall", "-Wextra", "-Werror"]
        _run([gcc, *cflags, f"-I{stage}", f"-I{APP_SRC}", "-c", str(stage / "quadhil_nn.c"), "-o", str(obj)])
        t, d, b = (int(x) for x in _run([size, str(obj)]).splitlines()[1].split()[:3])
        funcs = parse_functions(_run([objdump, "-d", "--no-show-raw-insn", str(obj)]))
        libm = _run([gcc, *ARM_FLAGS, "-print-file-name=libm.a"]).strip()
        libc = _run([gcc, *ARM_FLAGS, "-print-file-name=libc.a"]).strip()
        libm_funcs = parse_functions(_run([objdump, "-d", "--no-show-raw-insn", libm]))

        def library_function(name: str):  # libm first, then libc (__errno on tanhf's error path)
            if name not in libm_funcs:
                found = parse_functions(_run([objdump, "-d", "--no-show-raw-insn", f"--disassemble={name}", libc]))
                libm_funcs[name] = found.get(name) or []
            return libm_funcs[name] or None

        c_tanh_by_p = {p: longest_path_cycles(library_function, "tanhf", p) for p in (1, 3)}
        version = _run([gcc, "--version"]).splitlines()[0]
    fwd = funcs["qh_forward"]
    loops = _loops(fwd)
    innermost = [lp for lp in loops if not _nested(loops, lp)]

    def holds(lp, *ops) -> bool:
        return any(fwd[k].op.startswith(ops) for k in range(lp[0], lp[1] + 1))

    mac = [lp for lp in innermost if holds(lp, "vmul", "vfma", "vmla")]
    norm = [lp for lp in innermost if holds(lp, "vdiv")]
    bias = [lp for lp in innermost if all(not fwd[k].op.startswith("v") for k in range(lp[0], lp[1] + 1))
            and holds(lp, "ldr") and holds(lp, "str")]
    if len(mac) != 1 or len(norm) != 1 or len(bias) != 1:
        raise RuntimeError(f"could not find the MAC, normalization and bias loops in qh_forward ({opt}, {version})")
    mac_path = _iteration_cycles(fwd, mac[0], 1)[1]
    macs_per_iter = sum(1 for i in mac_path if i.op.startswith(("vmul", "vfma", "vmla")))
    by_addr = {i.addr: k for k, i in enumerate(fwd)}
    mac_nodes = frozenset(by_addr[i.addr] for i in mac_path)
    real = [lp for lp in loops if _longest_iteration(fwd, lp, [], 1) is not None]  # around within itself
    # the row loop: the cheapest other real loop whose way around passes the MAC loop's head (by
    # path, not by address range: -Os rotates loops so that ranges do not nest)
    row, row_cost = None, None
    for lp in real:
        path: list = []
        if lp == mac[0] or lp in (norm[0], bias[0]):
            continue
        c = _longest_iteration(fwd, lp, real, 1, path, free=mac_nodes)
        if c is not None and mac[0][0] in path and (row_cost is None or c < row_cost):
            row, row_cost = lp, c

    layers = shape["layers"]
    n_mac = sum(i * o for i, o, _ in layers)
    n_out = sum(o for _, o, _ in layers)
    n_in = sum(i for i, _, _ in layers)
    n_tanh = sum(o for _, o, act in layers if act == "TANH")
    known = [mac[0], norm[0], bias[0], *([row] if row else [])]

    # activation loops (out[j] = activate(out[j])): the other real loops whose dearest iteration
    # loads and stores a float with no arithmetic; their paths, not their address ranges, are
    # counted (a rotated loop's range can span other loops' code)
    activation, act_nodes = [], set()
    for lp in real:
        if lp in known:
            continue
        path: list = []
        if _longest_iteration(fwd, lp, real, 1, path) is None:
            continue
        ops = [fwd[k].op for k in path]
        if any(o.startswith(("vstr", "vstm")) for o in ops) and any(o.startswith(("vldr", "vldm")) for o in ops) \
                and not any(o.startswith(("vmul", "vfma", "vmla", "vdiv")) for o in ops):
            activation.append(lp)
            act_nodes |= set(path)
    row_nodes: list = []
    if row is not None:
        _longest_iteration(fwd, row, real, 1, row_nodes, free=mac_nodes)
    counted = {k for lp in (mac[0], norm[0], bias[0]) for k in range(lp[0], lp[1] + 1)} | set(row_nodes) | act_nodes
    by_p = {}
    for p in (1, 3):
        c_mac = _iteration_cycles(fwd, mac[0], p)[0] / macs_per_iter
        c_norm = _iteration_cycles(fwd, norm[0], p)[0]
        c_bias = _iteration_cycles(fwd, bias[0], p)[0]
        # once around the row loop with the MAC loop's instructions priced per MAC, plus the MAC
        # loop's last, failing test (compare + branch not taken)
        c_row = _longest_iteration(fwd, row, real, p, free=mac_nodes) + 2 if row else 0
        c_tanh = c_tanh_by_p[p]
        c_act = max(_longest_iteration(fwd, lp, real, p) for lp in activation) if activation else None
        # layer bookkeeping, prologue, epilogue: every other instruction once per layer; without a
        # recognised activation loop, once per output (a looser bound)
        c_rest = sum(insn_cycles(fwd[k], p, taken=True) for k in range(len(fwd)) if k not in counted)
        c_observe = sum(insn_cycles(i, p, taken=True) for i in funcs["qh_observe"])
        c_pwm = sum(insn_cycles(i, p, taken=True) for i in funcs["qh_action_to_pwm_ratio"])
        c_integral = sum(insn_cycles(i, p, taken=True) for i in funcs["qh_integrate_position_error"])
        parts = {
            "mac": n_mac * c_mac,
            "normalization": shape["obs_dim"] * c_norm,
            "bias_copy": n_out * c_bias,
            "row_overhead": n_in * c_row,
            "tanhf_upper": n_tanh * c_tanh,
            "activation_and_bookkeeping_upper": (n_out * c_act + len(layers) * c_rest) if c_act is not None
            else n_out * c_rest,
            "observe_upper": shape["obs_dim"] * c_observe,
            "pwm_mapping_upper": 4 * c_pwm,
            "integral_upper": 3 * c_integral,
        }
        by_p[p] = (c_mac, c_tanh, parts)
    weight_bytes = 4 * (n_mac + n_out)
    flash_wait = FLASH_WAIT_STATES * -(-weight_bytes // FLASH_LINE_BYTES)
    rate = float(rate_hz or shape["rate_hz"])
    lo, hi = (sum(by_p[p][2].values()) for p in (1, 3))
    mac_loop = [f"{i.op} {i.args}".strip() for i in mac_path]
    return {
        "compiler": version, "flags": " ".join([*ARM_FLAGS, opt]), "weights": str(weights_h),
        "vehicle": shape["vehicle"], "layers": [list(x) for x in layers], "obs_dim": shape["obs_dim"],
        "macs": n_mac, "tanh_calls": n_tanh,
        "loops_found": {"mac": True, "normalization": True, "bias": True, "row": row is not None,
                        "activation": bool(activation)},
        "flash_text_b": t, "flash_data_b": d, "ram_bss_b": b,
        "mac_loop": mac_loop, "mac_loop_instructions_per_mac": len(mac_loop) / macs_per_iter,
        "cycles_per_mac": [by_p[1][0], by_p[3][0]], "tanhf_cycles_upper": [by_p[1][1], by_p[3][1]],
        "parts_cycles_p1": by_p[1][2], "parts_cycles_p3": by_p[3][2],
        "cycles_per_tick": [lo, hi], "flash_wait_cycles": flash_wait,
        "cycles_per_tick_with_flash_waits": [lo + flash_wait, hi + flash_wait],
        "cpu_hz": CPU_HZ, "rate_hz": rate,
        "us_per_tick": [1e6 * lo / CPU_HZ, 1e6 * (hi + flash_wait) / CPU_HZ],
        "cpu_fraction": [lo * rate / CPU_HZ, (hi + flash_wait) * rate / CPU_HZ],
    }


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``quadhil bench onboard``."""
    parser.add_argument("--weights", default=str(APP_SRC / "policy_weights.h"), metavar="FILE.h",
                        help="policy_weights.h to estimate (quadhil export RUN --format c; default: the app's committed "
                             "one, the default 22-64-64-4 shape)")
    parser.add_argument("--opt", default="O2", choices=("O2", "Os", "O3"),
                        help="optimization level, gcc -OLEVEL (default O2; the firmware's own build uses Os)")
    parser.add_argument("--rate", type=float, default=None, metavar="HZ",
                        help="policy rate for the CPU fraction (default: the rate in the weights)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object of figures")


def run(args: argparse.Namespace) -> int:
    """Print the estimate (``--json``: one JSON object last); skipped with the reason when the ARM
    cross tools are missing."""
    from sim.report import emit_json, print_table

    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        reason = (f"{', '.join(missing)} not installed (Debian: apt-get install gcc-arm-none-eabi "
                  "libnewlib-arm-none-eabi): no Cortex-M4 estimate")
        print_table("quadhil bench onboard", [("skipped", reason)])
        if args.json:
            emit_json({"skipped": reason})
        return 0
    r = estimate(Path(args.weights), f"-{args.opt}", args.rate)
    lo, hi = r["cycles_per_tick"]
    print_table("quadhil bench onboard: Cortex-M4 (STM32F405, 168 MHz), static estimate", [
        ("compiler / flags", f"{r['compiler']} / {r['flags']}"),
        ("network", " -> ".join(str(x[0]) for x in r["layers"]) + f" -> {r['layers'][-1][1]}"),
        ("flash text / data / bss (B)", f"{r['flash_text_b']} / {r['flash_data_b']} / {r['ram_bss_b']}"),
        ("MAC inner loop", " ; ".join(r["mac_loop"])),
        ("cycles per MAC (P=1..3)", f"{r['cycles_per_mac'][0]:.1f} .. {r['cycles_per_mac'][1]:.1f}"),
        ("tanhf upper bound per call (cycles)", f"{r['tanhf_cycles_upper'][0]} .. {r['tanhf_cycles_upper'][1]}"),
        ("cycles per tick (zero wait)", f"{lo:,.0f} .. {hi:,.0f}"),
        ("+ flash wait states (cycles)", f"{r['flash_wait_cycles']:,}"),
        ("time per tick (us)", f"{r['us_per_tick'][0]:.0f} .. {r['us_per_tick'][1]:.0f}"),
        (f"CPU at {r['rate_hz']:g} Hz", f"{100 * r['cpu_fraction'][0]:.2f} % .. {100 * r['cpu_fraction'][1]:.2f} %"),
    ])
    if args.json:
        emit_json(r)
    return 0
