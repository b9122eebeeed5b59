"""The sk_lookup program's assembly (alter/proxy/steer.py), decoded without a kernel."""

from __future__ import annotations

import socket
import struct
from typing import List, Tuple

import pytest

from alter.proxy.steer import program

Insn = Tuple[int, int, int, int, int]  # code, dst, src, off, imm


def decode(code: bytes) -> List[Insn]:
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack("<BBhi", code[i : i + 8])
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def jumps(insns: List[Insn]) -> List[Tuple[int, int]]:
    """(index, target) of every conditional jump."""
    return [
        (i, i + 1 + off)
        for i, (op, _, _, off, _) in enumerate(insns)
        if op & 0x07 in (0x05, 0x06) and op not in (0x85, 0x95)
    ]


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "", "::", "::1", "10.1.2.200", "fd00::1:2"])
def test_every_jump_lands_on_the_pass_exit(host: str) -> None:
    insns = decode(program(host, 5432, 7, 8))
    out = len(insns) - 2
    assert insns[out][:1] == (0xB7,) and insns[out][4] == 1  # r0 = SK_PASS
    assert insns[-1][0] == 0x95
    assert jumps(insns) and all(target == out for _, target in jumps(insns))


def test_the_port_and_protocol_are_checked_first() -> None:
    insns = decode(program("::", 5432, 7, 8))
    assert (insns[1][3], insns[2][4]) == (12, 6)  # protocol == TCP
    assert (insns[3][3], insns[4][4]) == (60, 5432)  # local_port == 5432
    assert len(insns) == len(decode(program("::", 80, 7, 8)))  # "::" adds no address check


def test_a_specific_address_is_compared_in_network_order() -> None:
    insns = decode(program("10.1.2.200", 80, 7, 8))
    loads = [(off, nxt[4]) for (op, _, _, off, _), nxt in zip(insns, insns[1:]) if op == 0x61 and nxt[0] == 0x56]
    (word,) = struct.unpack("<i", socket.inet_aton("10.1.2.200"))
    assert (8, socket.AF_INET) in loads and (40, word) in loads
    six = decode(program("fd00::1:2", 80, 7, 8))
    six_loads = [off for op, _, _, off, _ in six if op == 0x61]
    assert [o for o in six_loads if 44 <= o <= 56] == [44, 48, 52, 56]


def test_both_maps_are_referenced_by_fd() -> None:
    insns = decode(program("127.0.0.1", 80, 70, 80))
    assert [imm for op, _, src, _, imm in insns if op == 0x18 and src == 1] == [70, 80]
