"""log_time_format: strftime tokens, %F microseconds, colours, per-second cache."""

from __future__ import annotations

import calendar
import time

import pytest

from alter.logs.timefmt import TimeFormat, parse

# 2026-03-07 14:05:09 UTC (a Saturday), plus microseconds.
TS = calendar.timegm((2026, 3, 7, 14, 5, 9, 0, 0, 0))


def fmt(f: str, ts: float = TS + 0.012345, color: bool = True) -> str:
    return TimeFormat(f, color=color, localtime=time.gmtime).format(ts).decode()


@pytest.mark.parametrize(
    "token, expected",
    [
        ("%Y", "2026"),
        ("%y", "26"),
        ("%m", "03"),
        ("%d", "07"),
        ("%H", "14"),
        ("%M", "05"),
        ("%S", "09"),
        ("%T", "14:05:09"),
        ("%F", "012345"),
        ("%%", "%"),
        ("%%F", "%F"),
        ("%a %b %j", "Sat Mar 066"),  # passed through to time.strftime
        ("%", "%"),  # a lone % at the end stays
    ],
)
def test_tokens(token: str, expected: str) -> None:
    assert fmt(token) == expected


def test_default_format_with_colours() -> None:
    out = fmt("ç214-%Y-%m-%d %Tç59-.%FçR-")
    assert out == "\033[38;5;214m2026-03-07 14:05:09\033[38;5;59m.012345\033[0m"


def test_default_format_without_colours() -> None:
    assert fmt("ç214-%Y-%m-%d %Tç59-.%FçR-", color=False) == "2026-03-07 14:05:09.012345"


def test_manual_examples() -> None:
    assert fmt("ç59-%TçR-") == "\033[38;5;59m14:05:09\033[0m"
    assert fmt("%Y-%m-%d %T") == "2026-03-07 14:05:09"


@pytest.mark.parametrize(
    "frac, usec",
    [
        (0.0, "000000"),
        (0.000001, "000001"),
        (0.5, "500000"),
        (0.999999, "999999"),
        (0.9999996, "999999"),
        (0.123456, "123456"),
    ],
)
def test_microseconds(frac: float, usec: str) -> None:
    assert fmt("%F", TS + frac) == usec


def test_several_usec_slots_and_text_around() -> None:
    assert fmt("[%F|%F] at %T!", TS + 0.25) == "[250000|250000] at 14:05:09!"


def test_cache_follows_the_second() -> None:
    tf = TimeFormat("%T.%F", localtime=time.gmtime)
    assert tf.format(TS + 0.1) == b"14:05:09.100000"
    assert tf.format(TS + 0.2) == b"14:05:09.200000"
    assert tf.format(TS + 1.3) == b"14:05:10.300000"
    assert tf.format(TS + 0.4) == b"14:05:09.400000"  # going back in time recomputes too


def test_localtime_called_once_per_second() -> None:
    calls = []

    def lt(sec: float) -> time.struct_time:
        calls.append(sec)
        return time.gmtime(sec)

    tf = TimeFormat("%Y-%m-%d %T.%F", localtime=lt)
    for i in range(1000):
        tf.format(TS + i / 1000)
    assert calls == [TS]


def test_empty_and_static_formats() -> None:
    assert TimeFormat("").empty
    assert fmt("") == ""
    assert fmt("static text") == "static text"


def test_parse_tokens() -> None:
    assert parse("a%Yb%Fc%%", color=False) == [("text", "a"), ("tok", "Y"), ("text", "b"), ("usec", ""), ("text", "c%")]


def test_non_ascii_literal_text() -> None:
    assert fmt("→ %T ✓") == "→ 14:05:09 ✓"


def test_uses_local_time_by_default() -> None:
    tf = TimeFormat("%Y-%m-%d %T")
    assert tf.format(TS).decode() == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(TS))
