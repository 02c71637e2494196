"""``quadhil bench onboard``: the Cortex-M4 estimate's structure and its pricing rules (never a timing:
the figures are a static estimate; these tests check how it is built)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from firmware_bridge import onboard_bench as ob

HAVE_ARM = all(shutil.which(t) for t in ob.TOOLS)


def _insn(op: str, args: str = "", addr: int = 0) -> ob.Insn:
    return ob.Insn(addr, op, args)


def test_instruction_prices_are_the_cortex_m4_trm_counts():
    assert ob.insn_cycles(_insn("vldr", "s15, [r3]"), refill=1) == 2
    assert ob.insn_cycles(_insn("vldmia", "r9!, {s14}"), refill=1) == 2  # 1 + N
    assert ob.insn_cycles(_insn("vpush", "{d8}"), refill=1) == 3  # a double is two registers
    assert ob.insn_cycles(_insn("vfma", "s15, s14, s13"), refill=1) == 3
    assert ob.insn_cycles(_insn("vmul", "s15, s15, s13"), refill=1) == 1
    assert ob.insn_cycles(_insn("vdiv", "s14, s15, s13"), refill=1) == 14
    assert ob.insn_cycles(_insn("vmov", "s0, r0"), refill=1) == 2
    assert ob.insn_cycles(_insn("ldr", "r3, [r7, #12]"), refill=1) == 2
    assert ob.insn_cycles(_insn("pop", "{r4, pc}"), refill=3) == 1 + 2 + 3
    bne = _insn("bne", "288 <qh_forward+0x84>", addr=0x29E)
    assert ob.insn_cycles(bne, refill=3, taken=True) == 4 and ob.insn_cycles(bne, refill=3) == 1


def test_the_loop_path_takes_forward_branches_inside_the_loop_and_closes_at_the_back_edge():
    # a rotated loop as -Os emits it: the test at the head jumps over the exit into the body
    text = """
00000000 <f>:
   0:\tcmp\tr3, sl
   2:\tbne.n\t8 <f+0x8>
   4:\tadd\tlr, r1
   6:\tb.n\t20 <f+0x20>
   8:\tvldr\ts15, [r3]
   c:\tvfma.f32\ts15, s13, s14
  10:\tb.n\t0 <f>
"""
    insns = ob.parse_functions(text)["f"]
    (loop,) = ob._loops(insns)
    cycles, path = ob._iteration_cycles(insns, loop, refill=1)
    assert [i.op for i in path] == ["cmp", "bne", "vldr", "vfma", "b"]
    assert cycles == 1 + 2 + 2 + 3 + 2
    assert not ob._acyclic(insns)


def test_a_tail_call_is_not_a_loop():
    text = """
00000000 <g>:
   0:\tcmp\tr0, #0
   2:\tbeq.n\t6 <g+0x6>
   4:\tb.w\t0 <__math_oflowf>
   6:\tbx\tlr
"""
    insns = ob.parse_functions(text)["g"]
    assert ob._loops(insns) == [] and ob._acyclic(insns)


def test_a_loop_free_functions_bound_is_its_dearest_path_with_its_callees():
    text = """
00000000 <f>:
   0:\tcmp\tr0, #0
   2:\tbeq.n\ta <f+0xa>
   4:\tvdiv.f32\ts0, s0, s1
   8:\tbx\tlr
   a:\tbl\t0 <g>
   e:\tbx\tlr

00000000 <g>:
   0:\tvadd.f32\ts0, s0, s0
   4:\tbx\tlr
"""
    funcs = ob.parse_functions(text)
    # cmp (1), then not taken (1) + vdiv (14) + bx (1 + P) against taken (1 + P) + bl (1 + P) + g (1 + 1 + P) + bx (1 + P)
    assert ob.longest_path_cycles(funcs, "f", refill=1) == 1 + max(1 + 14 + 2, 2 + 2 + 3 + 2) == 18
    assert ob.longest_path_cycles(funcs, "f", refill=3) == 1 + max(1 + 14 + 4, 4 + 4 + 5 + 4) == 20
    with pytest.raises(RuntimeError, match="not in the disassembly"):
        ob.longest_path_cycles({"f": funcs["f"]}, "f", refill=1)


def _bench(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "quadhil", "bench", "onboard", *args, "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc not installed (Debian: apt-get install gcc-arm-none-eabi "
                                        "libnewlib-arm-none-eabi): no Cortex-M4 estimate to check")
@pytest.mark.parametrize("opt", ["O2", "Os"])
def test_the_estimate_of_the_default_network_adds_up(opt):
    d = _bench("--opt", opt)
    assert all(d["loops_found"].values()), d["loops_found"]  # -Os rotates loops: found by path, not range
    assert d["layers"] == [[22, 64, "TANH"], [64, 64, "TANH"], [64, 4, "TANH"]]
    assert d["macs"] == 22 * 64 + 64 * 64 + 64 * 4 and d["tanh_calls"] == 132
    assert 0 < d["flash_text_b"] < 32 * 1024
    assert any(op.split()[0] in ("vfma", "vmla", "vmul") for op in d["mac_loop"])
    lo, hi = d["cycles_per_tick"]
    assert 0 < lo <= hi
    for p, parts in (("p1", d["parts_cycles_p1"]), ("p3", d["parts_cycles_p3"])):
        assert sum(parts.values()) == pytest.approx(lo if p == "p1" else hi)
    assert d["parts_cycles_p1"]["mac"] == pytest.approx(d["macs"] * d["cycles_per_mac"][0])
    assert d["cycles_per_tick_with_flash_waits"] == [lo + d["flash_wait_cycles"], hi + d["flash_wait_cycles"]]
    assert d["cpu_fraction"][0] == pytest.approx(lo * d["rate_hz"] / d["cpu_hz"])
    assert d["cpu_fraction"][1] == pytest.approx((hi + d["flash_wait_cycles"]) * d["rate_hz"] / d["cpu_hz"])


def test_without_the_arm_tools_the_bench_says_so(monkeypatch, capsys):
    import argparse

    monkeypatch.setattr(ob.shutil, "which", lambda name: None)
    assert ob.run(argparse.Namespace(weights=None, opt="O2", rate=None, json=True)) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "arm-none-eabi-gcc" in d["skipped"] and "gcc-arm-none-eabi" in d["skipped"]
