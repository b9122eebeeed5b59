"""Vanguard rules, CIDR sets, client IP resolution, token buckets and bans (fake clock)."""

from __future__ import annotations

from typing import List

import pytest

from alter.proxy.vanguard import DROP, PASS, IpSet, Rules, Vanguard, client_ip, ip_text, owner_of, parse_ip


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def ip(text: str):
    key = parse_ip(text)
    assert key is not None
    return key


# --------------------------------------------------------------------------- CIDR


@pytest.mark.parametrize(
    "cidrs, addr, inside",
    [
        (["10.0.0.0/8"], "10.255.255.255", True),
        (["10.0.0.0/8"], "11.0.0.0", False),
        (["10.0.0.0/8"], "9.255.255.255", False),
        (["1.2.3.4/32"], "1.2.3.4", True),
        (["1.2.3.4/32"], "1.2.3.5", False),
        (["1.2.3.4"], "1.2.3.4", True),  # a bare address is a /32
        (["0.0.0.0/0"], "255.255.255.255", True),
        (["0.0.0.0/0"], "0.0.0.0", True),
        (["0.0.0.0/0"], "::1", False),  # an IPv4 range never holds an IPv6 client
        (["::/0"], "2001:db8::1", True),
        (["::/0"], "1.2.3.4", False),  # ::/0 means every IPv6 client, not every client
        (["2001:db8::1/128"], "2001:db8::1", True),
        (["2001:db8::1/128"], "2001:db8::2", False),
        (["2001:db8::/32"], "2001:db8:ffff::1", True),
        (["2001:db8::/32"], "2001:db9::", False),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),  # mapped client = IPv4 client
        (["::ffff:10.0.0.0/104"], "10.1.2.3", True),  # mapped range = IPv4 range
        (["::ffff:10.0.0.0/104"], "11.1.2.3", False),
        (["::ffff:1.2.3.4/128"], "1.2.3.4", True),
        (["1.2.3.0/24", "1.2.4.0/24", "1.2.3.128/25"], "1.2.4.200", True),  # merged spans
        (["1.2.3.0/24", "1.2.5.0/24"], "1.2.4.1", False),
        (["192.168.1.77/24"], "192.168.1.1", True),  # host bits are ignored (strict=False)
        ([], "1.2.3.4", False),
    ],
)
def test_ipset(cidrs: List[str], addr: str, inside: bool) -> None:
    assert (ip(addr) in IpSet(cidrs)) is inside


def test_ipset_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        IpSet(["10.0.0.0/33"])
    with pytest.raises(ValueError):
        IpSet(["not-an-ip"])


def test_parse_and_owner() -> None:
    assert parse_ip("::ffff:1.2.3.4") == parse_ip("1.2.3.4") == (4, 0x01020304)
    assert parse_ip("nope") is None
    assert ip_text(ip("::ffff:1.2.3.4")) == "1.2.3.4"
    assert owner_of(ip("127.0.0.2"), 2) == 0 and owner_of(ip("127.0.0.3"), 2) == 1
    assert owner_of(ip("2001:db8::3"), 2) == 1  # low 32 bits of IPv6
    assert owner_of(ip("1.2.3.4"), 1) == 0


# --------------------------------------------------------------------------- client IP


@pytest.mark.parametrize(
    "xff, real, expected",
    [
        (None, None, "203.0.113.9"),  # no header: the peer
        (b"1.1.1.1", None, "1.1.1.1"),
        (b"6.6.6.6, 1.1.1.1", None, "1.1.1.1"),  # spoofed left part ignored: last untrusted hop wins
        (b"1.1.1.1, 10.0.0.5", None, "1.1.1.1"),  # internal hops skipped
        (b"1.1.1.1, 10.0.0.5, 127.0.0.1, 192.168.0.1", None, "1.1.1.1"),
        (b"10.0.0.9, 192.168.0.1", None, "10.0.0.9"),  # all internal: the leftmost
        (b"garbage, 1.1.1.1", None, "1.1.1.1"),
        (b"1.1.1.1, garbage", None, "203.0.113.9"),  # unparseable hop: stop, nearest valid (the peer)
        (b"1.1.1.1, garbage, 10.0.0.1", None, "10.0.0.1"),
        (b"[2001:db8::1]:443, 10.0.0.1", None, "2001:db8::1"),
        (b"1.1.1.1:5555", None, "1.1.1.1"),
        (b"::ffff:1.1.1.1", None, "1.1.1.1"),
        (None, b"8.8.8.8", "8.8.8.8"),
        (None, b"nonsense", "203.0.113.9"),
        (b"1.1.1.1", b"8.8.8.8", "1.1.1.1"),  # X-Forwarded-For first
        (b"fd00::1, 2001:db8::7, fe80::1", None, "2001:db8::7"),
    ],
)
def test_client_ip(xff, real, expected) -> None:
    assert ip_text(client_ip(ip("203.0.113.9"), xff, real)) == expected


# --------------------------------------------------------------------------- rules


def vg(clock: Clock, **cfg) -> Vanguard:
    return Vanguard("api", Rules(cfg), clock)


def test_accept_rules() -> None:
    v = vg(Clock(), ban_ip=["6.6.6.0/24"], allow_ip=["1.1.1.0/24"])
    assert v.accept(ip("6.6.6.6"), http=False, trust_proxy=True) == (DROP, "ban_ip", False)
    assert v.accept(ip("6.6.6.6"), http=True, trust_proxy=True) == (403, "ban_ip", False)
    assert v.accept(ip("1.1.1.1"), http=True, trust_proxy=True) == (PASS, "", False)
    assert v.accept(ip("2.2.2.2"), http=True, trust_proxy=True) == (DROP, "allow_ip", False)
    # an internal peer may be a front proxy: the per-request client IP decides
    assert v.accept(ip("127.0.0.1"), http=True, trust_proxy=True) == (PASS, "", True)
    assert v.accept(ip("127.0.0.1"), http=True, trust_proxy=False) == (DROP, "allow_ip", False)
    assert v.accept(ip("127.0.0.1"), http=False, trust_proxy=True) == (DROP, "allow_ip", False)
    assert v.check_ip(ip("1.1.1.9"), ip("127.0.0.1"), True) == (PASS, "")
    assert v.check_ip(ip("2.2.2.2"), ip("127.0.0.1"), True) == (403, "allow_ip")
    assert v.check_ip(ip("6.6.6.1"), ip("127.0.0.1"), False) == (403, "ban_ip")


def test_methods() -> None:
    v = vg(Clock(), allow_method=["GET", "post"], ban_method=["POST"])
    assert v.check_method(b"GET") == (PASS, "")
    assert v.check_method(b"POST") == (405, "ban_method")  # ban before allow
    assert v.check_method(b"PUT") == (405, "allow_method")
    assert v.rules.allow_header == "GET"


def test_paths() -> None:
    v = vg(Clock(), ban_path=["*.php", "*wp-*", "/.git*", "/admin/login"])
    for target in [b"/index.php", b"/x/wp-login", b"/.git/config", b"/admin/login", b"/admin/login?x=1",
                   b"/%2egit/config", b"/a/../.git/HEAD", b"//admin//login", b"/admin/login/", b"/INDEX.PHP",
                   b"/admin/login;jsessionid=1", b"/%252egit", b"/x.ph%70", b"/admin%2flogin", b"/\\admin\\login"]:  # fmt: skip
        assert v.check_path(target)[0] == 403, target
    for target in [b"/", b"/php", b"/admin/login2", b"/gitlab", b"/admin"]:
        assert v.check_path(target) == (PASS, ""), target
    assert v.check_path(b"/../etc/passwd")[0] == 400
    assert v.check_path(b"/a%00.txt")[0] == 400


def test_token_bucket_refill_and_burst() -> None:
    clock = Clock()
    v = vg(clock, rate_limit=2, rate_burst=4)
    a = ip("1.1.1.1")
    assert [v.consume(a)[0] for _ in range(5)] == [PASS, PASS, PASS, PASS, 429]  # burst of 4
    clock.t += 0.49
    assert v.consume(a)[0] == 429  # 0.98 tokens: not yet
    clock.t += 0.01
    assert v.consume(a)[0] == PASS  # 1 token after 0.5 s at 2/s
    assert v.consume(a)[0] == 429
    clock.t += 100
    assert [v.consume(a)[0] for _ in range(5)] == [PASS] * 4 + [429]  # refill caps at the burst
    assert v.consume(ip("2.2.2.2"))[0] == PASS  # buckets are per IP


def test_default_burst_and_fractional_rate() -> None:
    clock = Clock()
    v = vg(clock, rate_limit=0.5)
    a = ip("1.1.1.1")
    assert v.rules.burst == 1
    assert [v.consume(a)[0] for _ in range(2)] == [PASS, 429]
    clock.t += 2.0
    assert v.consume(a)[0] == PASS


def test_ban_ttl() -> None:
    clock = Clock()
    v = vg(clock, rate_limit=1, rate_burst=1, ban_ttl=5000)
    a = ip("1.1.1.1")
    assert v.consume(a)[0] == PASS
    code, why = v.consume(a)
    assert code == 429 and "banned" in why
    clock.t += 1.0  # a token is back, but the ban holds
    assert v.consume(a) == (403, "banned")
    assert v.active_bans() == [("1.1.1.1", 4000)]
    clock.t += 4.01
    assert v.consume(a)[0] == PASS
    assert v.active_bans() == []
    assert v.bans_total == 1


def test_sweep_bounds_state() -> None:
    clock = Clock()
    v = vg(clock, rate_limit=10, ban_ttl=1000)
    for i in range(100):
        v.consume((4, i))
    v.bans[(4, 7)] = clock.t + 1
    clock.t += 10
    v.sweep()
    assert v.snapshot()["tracked_ips"] == 0 and not v.bans


def test_rules_flags_and_counters() -> None:
    assert not Rules(None).active and not Rules({"log": False}).active
    assert Rules({"rate_limit": 5}).stateful and not Rules({"ban_ip": ["1.2.3.4"]}).stateful
    assert Rules({"log": "off"}).log is False
    v = vg(Clock(), ban_path=["*.php"])
    v.count("ban_path *.php")
    v.count("rate_limit")
    assert v.snapshot()["blocked"] == {"ban_path": 1, "rate_limit": 1}
