"""Property tests: the loader never crashes; print -> parse round-trips every option."""

from __future__ import annotations

import os
import re
from typing import Any, Dict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alter.config import options
from alter.config.loader import load_bytes, load_text
from alter.config.printer import format_workers
from alter.errors import ConfigError
from tests.unit.config_helpers import fixture

# APM_HYPOTHESIS_EXAMPLES=5000 for a long soak; no example database (nothing written into the repo).
SETTINGS = settings(
    max_examples=int(os.environ.get("APM_HYPOTHESIS_EXAMPLES", "250")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
WHERE_RE = re.compile(r"^t\.conf(:\d+:\d+)?$")

# ------------------------------------------------------------------ never crash

SYNTAX = st.sampled_from(
    list(";{}\"'`#/\\:,\n\t ç") + ["//", "worker", "include", "{ exec n; }", "\\u", "\x00", "\ufeff"]
)


def _check(result) -> None:
    for err in result.errors:
        assert isinstance(err, ConfigError)
        assert WHERE_RE.match(err.where) or err.where.startswith("t.conf:"), err.where
        assert err.message.startswith(err.where)
    for warning in result.warnings:
        assert isinstance(warning, str)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text_never_crashes(text):
    _check(load_text(text, "t.conf"))


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data):
    _check(load_bytes(data, "t.conf"))


def _valid_sources():
    names = ["dashboard.conf", "vanguard.conf", "on_crash.conf", "daemon.conf", "shop.conf", "time_formats.conf"]
    out = []
    for name in names:
        with open(fixture("manual", name), encoding="utf-8") as fh:
            out.append(fh.read())
    return out


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(_valid_sources()))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "dup"]))
        if action == "insert":
            text = text[:pos] + draw(st.one_of(SYNTAX, st.text(max_size=5))) + text[pos:]
        elif action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)) :]
        elif action == "replace":
            text = text[:pos] + draw(SYNTAX) + text[pos + 1 :]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])
    return text


@SETTINGS
@given(mutated())
def test_mutated_valid_configs_never_crash(text):
    result = load_text(text, "t.conf")
    _check(result)
    for worker in result.workers:  # whatever survived is canonical: printing it reads back the same
        again = load_text(format_workers([worker.config]), "t.conf")
        assert again.errors == []
        assert again.workers[0].config == worker.config


# ------------------------------------------------------------------ round trip

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
WORD = TEXT.map(str.strip).filter(lambda s: bool(s) and "," not in s)
NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,15}", fullmatch=True)
ENV_KEY = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
SAMPLES: Dict[str, Any] = {
    "name": NAME,
    "namespace": NAME,
    "env_index": ENV_KEY,
    "env": st.lists(st.builds(lambda k, v: f"{k}={v}", ENV_KEY, TEXT), min_size=1, max_size=3),
    "schedule": st.sampled_from(["0 2 * * *", "*/5 * * * *", "0,30 9-17 * * 1-5", "@daily"]),
    "restart_cron": st.sampled_from(["0 3 * * 0", "@hourly"]),
    "health_check": st.sampled_from(["on", "http://127.0.0.1:3000/health", "https://x.example/h?a=1"]),
    "syslog": st.sampled_from(["syslog://localhost:514", "tcp://10.0.0.1:601", "/dev/log"]),
    "server": st.lists(
        st.sampled_from([":8080", "http://0.0.0.0:3000", "ws://[::1]:3001", "tcp://127.0.0.1:5432", "https://h:443"]),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    "allow_ip": st.lists(st.sampled_from(["10.0.0.0/8", "192.168.1.1", "2606:4700::/32"]), min_size=1, unique=True),
    "ban_ip": st.lists(st.sampled_from(["10.0.0.0/8", "1.2.3.4/32", "::1"]), min_size=1, unique=True),
    "allow_method": st.lists(st.sampled_from(["GET", "POST", "PUT"]), min_size=1, unique=True),
    "ban_method": st.lists(st.sampled_from(["TRACE", "OPTIONS"]), min_size=1, unique=True),
    "url": st.sampled_from(["https://hooks.example.com/apm-crash", "http://10.0.0.1:8080/x?y=z#f"]),
    "host": st.sampled_from(["localhost:8125", "10.0.0.1:9125"]),
}


def value_strategy(option: options.Option):
    if option.name in SAMPLES:
        return SAMPLES[option.name]
    low = option.minimum if option.minimum is not None else -(10**6)
    high = option.maximum if option.maximum is not None else 10**9
    kind = option.kind
    if kind is options.Kind.STR:
        return WORD if option.required else TEXT
    if kind is options.Kind.BOOL:
        return st.booleans()
    if kind in (options.Kind.INT, options.Kind.DURATION):
        return st.integers(int(low), int(high))
    if kind is options.Kind.SIZE:
        return st.integers(0, 2**42)
    if kind is options.Kind.FLOAT:
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if kind is options.Kind.ENUM:
        return st.sampled_from(option.choices)
    if kind is options.Kind.INTLIST:
        return st.lists(st.integers(-255, 255), min_size=1, max_size=4, unique=True)
    if option.name == "params":
        return st.lists(TEXT, min_size=1, max_size=4)
    return st.lists(WORD, min_size=1, max_size=4, unique=True)


@st.composite
def block_config(draw, kind: str):
    out: Dict[str, Any] = {}
    for name, option in options.BLOCKS[kind].items():
        if name == "cmd" or not (option.required or draw(st.integers(0, 3)) == 0):
            continue
        if option.kind is options.Kind.BLOCK:
            if option.repeat_block:
                subs = [draw(block_config(option.block)) for _ in range(draw(st.integers(1, 3)))]
                for index, sub in enumerate(subs):
                    sub["id"] = index
                out[name] = subs
            else:
                out[name] = draw(block_config(option.block))
        else:
            out[name] = draw(value_strategy(option))
    return out


@SETTINGS
@given(st.lists(block_config("worker"), min_size=1, max_size=3), block_config("daemon"))
def test_print_parse_round_trip(workers, daemon):
    canonical = []
    for index, config in enumerate(workers):
        config["name"] = f"w{index}-{config.get('name', 'x')}"[:100]
        clean, _ = options.coerce_block("worker", config)
        assert clean == config  # the generator makes canonical values
        canonical.append(clean)
    text = format_workers(canonical, daemon=daemon, top={"telemetry": True})
    result = load_text(text, "t.conf")
    assert result.errors == [], (text, [e.message for e in result.errors])
    assert result.warnings == [], text
    assert [w.config for w in result.workers] == canonical
    assert result.daemon == daemon
    assert result.top == {"telemetry": True}
    assert format_workers([w.config for w in result.workers], daemon=result.daemon, top=result.top) == text
