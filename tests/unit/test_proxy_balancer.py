"""Balancer, port allocator, listener specs, reuseport BPF program, stats merging, max_conns slots."""

from __future__ import annotations

import socket
import struct

import pytest

from alter.errors import ConfigError
from alter.proxy.model import ListenerSpec, Upstream, listeners_from_config, options_from_config, resolve_options
from alter.proxy.ports import NoFreePort, PortAllocator
from alter.proxy.reuseport import ip_hash_program
from alter.proxy.slots import ConnSlots
from alter.proxy.stats import merge_stats, summary_line
from alter.proxy.upstream import Balancer


def specs(*ports: int, draining: tuple = ()):
    return [{"index": i, "host": "127.0.0.1", "port": p, "state": "draining" if p in draining else "live"}
            for i, p in enumerate(ports)]  # fmt: skip


def test_round_robin() -> None:
    b = Balancer()
    b.update(specs(1001, 1002, 1003))
    picks = [b.pick(0.0).port for _ in range(6)]
    assert sorted(picks[:3]) == [1001, 1002, 1003] and picks[:3] == picks[3:]


def test_draining_and_removed_leave_rotation() -> None:
    b = Balancer()
    b.update(specs(1001, 1002))
    first = b.targets["127.0.0.1:1001"]
    b.update(specs(1001, 1002, draining=(1001,)))
    assert b.targets["127.0.0.1:1001"] is first and first.draining  # same object: in-flight counts survive
    assert {b.pick(0.0).port for _ in range(4)} == {1002}
    removed = b.update(specs(1002))
    assert removed == [first] and first.removed
    b.update([])
    assert b.pick(0.0) is None


def test_failed_targets_are_skipped_unless_nothing_else() -> None:
    b = Balancer()
    b.update(specs(1001, 1002))
    bad = b.targets["127.0.0.1:1001"]
    bad.failed_until = 10.0
    assert {b.pick(5.0).port for _ in range(4)} == {1002}
    b.targets["127.0.0.1:1002"].failed_until = 10.0
    assert b.pick(5.0) is not None  # all failing: try anyway
    assert {b.pick(11.0).port for _ in range(4)} == {1001, 1002}
    assert b.pick(11.0, exclude=bad).port == 1002


def test_probing_targets_are_standby_only_while_nothing_is_live() -> None:
    b = Balancer()
    probing = [{"index": 0, "host": "127.0.0.1", "port": 1001, "state": "probing"},
               {"index": 1, "host": "127.0.0.1", "port": 1002, "state": "probing"}]  # fmt: skip
    b.update(probing)
    assert b.live == [] and {t.port for t in b.standby} == {1001, 1002}
    assert {b.pick(0.0).port for _ in range(4)} == {1001, 1002}  # nothing live: try the standbys
    first = b.targets["127.0.0.1:1001"]
    assert b.pick(0.0, exclude=first).port == 1002
    assert b.targets["127.0.0.1:1001"].snapshot()["state"] == "probing"
    b.update([probing[0], {**probing[1], "state": "live"}])  # 1002 admitted
    assert b.targets["127.0.0.1:1001"] is first  # same object across the promotion
    assert {b.pick(0.0).port for _ in range(6)} == {1002}  # a live one exists: standby untouched
    b.update([{**probing[0], "state": "live"}, {**probing[1], "state": "live"}])
    assert not first.probing and {b.pick(0.0).port for _ in range(4)} == {1001, 1002}
    b.update([{**probing[0], "state": "draining"}])
    assert b.pick(0.0) is None  # draining is never a standby


def test_port_allocator_never_repeats_and_cools_down() -> None:
    now = [0.0]
    free = {20000, 20001, 20002}
    alloc = PortAllocator(low=20000, high=20002, cooldown=10.0, clock=lambda: now[0], is_free=lambda p: p in free)
    got = {alloc.allocate("a"), alloc.allocate("b"), alloc.allocate("c")}
    assert got == {20000, 20001, 20002}
    with pytest.raises(NoFreePort):
        alloc.allocate("d")
    alloc.release(20001)
    with pytest.raises(NoFreePort):
        alloc.allocate("d")  # still cooling down
    now[0] = 11.0
    assert alloc.allocate("d") == 20001
    free.discard(20000)
    alloc.release(20000)
    now[0] = 30.0
    with pytest.raises(NoFreePort):
        alloc.allocate("e")  # free in our books, but something else bound it


def test_port_allocator_real_ports() -> None:
    alloc = PortAllocator()
    lo, hi = alloc.low, alloc.high
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        eph_lo, eph_hi = (int(x) for x in f.read().split())
    assert hi < eph_lo or lo > eph_hi  # outside the ephemeral range
    port = alloc.allocate("x")
    s = socket.socket()
    s.bind(("127.0.0.1", port))  # it really is free
    s.close()
    assert alloc.owner(port) == "x"


def test_listener_specs() -> None:
    cfg = {"server": ["http://0.0.0.0:3000", ":8080", "wss://[::1]:8443", "tcp://127.0.0.1:5432"], "tls": False,
           "tls_cert": "/c.pem", "tls_key": "/k.pem"}  # fmt: skip
    ls = listeners_from_config(cfg)
    assert [s.id for s in ls] == [
        "http://0.0.0.0:3000",
        "http://0.0.0.0:8080",
        "wss://[::1]:8443",
        "tcp://127.0.0.1:5432",
    ]
    assert [s.secure for s in ls] == [False, False, True, False]
    assert ls[2].wire(3, 10)["tls"] == {"cert": "/c.pem", "key": "/k.pem", "ca": None}
    assert ListenerSpec.parse("https://127.0.0.1:1").secure
    with pytest.raises(ValueError):
        ListenerSpec.parse("ftp://x:1")
    assert options_from_config({"keep_alive": 5, "name": "x"}) == {"keep_alive": 5}
    assert resolve_options({"keep_alive": None, "max_conns": 3})["keep_alive"] == 120000
    assert Upstream(0, "127.0.0.1", 5).key == "127.0.0.1:5"
    assert issubclass(ConfigError, Exception)


def test_bpf_program_shape() -> None:
    prog = ip_hash_program(3)
    assert len(prog) % 8 == 0
    code = [struct.unpack("HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    assert code[-2] == (0x94, 0, 0, 3)  # mod #3
    assert code[-1][0] == 0x16  # ret a
    assert code[3][3] == (-0x100000 + 12) & 0xFFFFFFFF  # IPv4 source address


def test_merge_stats_and_summary() -> None:
    a = {"conns_active": 1, "requests": 5, "status": {"200": 4, "502": 1},
         "upstreams": {"h:1": {"index": 0, "host": "h", "port": 1, "active": 1, "requests": 5}},
         "vanguard": {"blocked": {"ban_path": 2}, "blocked_total": 2, "bans": [["1.1.1.1", 500]], "bans_total": 1}}  # fmt: skip
    b = {"conns_active": 2, "requests": 7, "status": {"200": 7},
         "upstreams": {"h:1": {"index": 0, "host": "h", "port": 1, "active": 0, "requests": 7}},
         "vanguard": {"blocked": {"ban_path": 1, "rate_limit": 3}, "blocked_total": 4, "bans": [["1.1.1.1", 900]]}}  # fmt: skip
    m = merge_stats([a, b])
    assert m["requests"] == 12 and m["conns_active"] == 3 and m["status"] == {"200": 11, "502": 1}
    assert m["upstreams"]["h:1"]["requests"] == 12
    assert m["vanguard"]["blocked"] == {"ban_path": 3, "rate_limit": 3} and m["vanguard"]["bans"] == [["1.1.1.1", 900]]
    assert merge_stats([])["vanguard"] is None
    assert summary_line({"ban_path": 3}, {"ban_path": 3}, 60) == ""  # silent interval
    assert summary_line({"ban_path": 3}, {"ban_path": 5, "rate_limit": 10}, 60) == (
        "vanguard: in last 60s, 12 events (rate_limit 10, ban_path 2)"
    )


def test_conn_slots_exact_across_processes() -> None:
    fd = ConnSlots.create(2)
    p0, p1, mgr = ConnSlots(fd, 2, 0), ConnSlots(fd, 2, 1), ConnSlots(fd, 2, -1)
    assert p0.acquire(5, 3) and p1.acquire(5, 3) and p0.acquire(5, 3)
    assert not p1.acquire(5, 3) and not p0.acquire(5, 3)
    assert p1.acquire(6, 3)  # rows are independent
    p0.release(5)
    assert p1.acquire(5, 3) and mgr.total(5) == 3
    mgr.clear(proc=1)  # process 1 died
    assert mgr.total(5) == 1 and mgr.total(6) == 0
    for s in (p0, p1, mgr):
        s.close()
