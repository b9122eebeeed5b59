"""çN- colour syntax (the manual's table) and ANSI stripping."""

from __future__ import annotations

import pytest

from alter.logs.colors import has_escapes, render, strip_ansi, strip_ansi_text

ESC = "\033"


@pytest.mark.parametrize(
    "src, expected",
    [
        # The manual's table, form by form.
        ("ç82-", f"{ESC}[38;5;82m"),
        ("ç15,88-", f"{ESC}[38;5;15;48;5;88m"),
        ("ç51,0,1-", f"{ESC}[38;5;51;48;5;0;1m"),
        ("ç1,2,2-", f"{ESC}[38;5;1;48;5;2;2m"),
        ("ç1,2,4-", f"{ESC}[38;5;1;48;5;2;4m"),
        ("ç1,2,9-", f"{ESC}[38;5;1;48;5;2;9m"),
        ("çR-", f"{ESC}[0m"),
        # The manual's examples.
        ("ç82-myappçR-", f"{ESC}[38;5;82mmyapp{ESC}[0m"),
        ("ç196-myappçR-", f"{ESC}[38;5;196mmyapp{ESC}[0m"),
        ("ç15,88-ERRORçR-", f"{ESC}[38;5;15;48;5;88mERROR{ESC}[0m"),
        ("ç51,0,1-myappçR-", f"{ESC}[38;5;51;48;5;0;1mmyapp{ESC}[0m"),
        # Range ends.
        ("ç0-", f"{ESC}[38;5;0m"),
        ("ç255-", f"{ESC}[38;5;255m"),
        ("ç255,255-", f"{ESC}[38;5;255;48;5;255m"),
        # Leading zeros are a number like any other.
        ("ç059-", f"{ESC}[38;5;59m"),
    ],
)
def test_render_table(src: str, expected: str) -> None:
    assert render(src) == expected


@pytest.mark.parametrize(
    "src",
    ["façade", "ç256-", "ç1,256-", "ç-", "ç12", "çX-", "ç1234-", "plain", "100%", "ç,1-"],
)
def test_not_an_escape_is_kept(src: str) -> None:
    assert render(src) == src
    assert render(src, color=False) == src
    assert not has_escapes(src)


def test_render_without_colour_drops_escapes_only() -> None:
    assert render("ç214-%Y-%m-%d %Tç59-.%FçR-", color=False) == "%Y-%m-%d %T.%F"
    assert render("ç51,0,1-api çR-façade", color=False) == "api façade"


def test_default_time_format_colours() -> None:
    assert render("ç214-%Y-%m-%d %Tç59-.%FçR-") == f"{ESC}[38;5;214m%Y-%m-%d %T{ESC}[38;5;59m.%F{ESC}[0m"


def test_has_escapes() -> None:
    assert has_escapes("ç51-api")
    assert has_escapes("xçR-")
    assert not has_escapes("ç999-api")


@pytest.mark.parametrize(
    "raw, clean",
    [
        (b"\x1b[31mred\x1b[0m", b"red"),
        (b"\x1b[38;5;214mx\x1b[38;5;15;48;5;88;1my\x1b[0m", b"xy"),
        (b"a\x1b[2Kb\x1b[1;1Hc", b"abc"),  # erase line, cursor position
        (b"\x1b[?25lhidden cursor\x1b[?25h", b"hidden cursor"),  # private modes
        (b"\x1b]0;window title\x07text", b"text"),  # OSC, BEL-terminated
        (b"\x1b]8;;https://x.example\x1b\\link\x1b]8;;\x1b\\", b"link"),  # OSC 8 hyperlink, ST-terminated
        (b"\x1b]2;unterminated title\nnext", b"\nnext"),  # OSC cut at end of line, line kept
        (b"\x1bPqsixel data\x1b\\after", b"after"),  # DCS
        (b"\x1b(Bcharset", b"charset"),  # nF escape
        (b"\x1b7save\x1b8", b"save"),  # two-byte escapes
        (b"\x1bMrev", b"rev"),
        (b"no escapes at all", b"no escapes at all"),
        (b"caf\xc3\xa9 \x1b[1m\xe2\x9c\x93\x1b[0m", "café ✓".encode()),
        (b"binary \xff\xfe\x1b[0m\x00", b"binary \xff\xfe\x00"),
        (b"trailing lone escape \x1b", b"trailing lone escape "),
    ],
)
def test_strip_ansi(raw: bytes, clean: bytes) -> None:
    assert strip_ansi(raw) == clean
    assert strip_ansi_text(raw.decode("utf-8", "surrogateescape")) == clean.decode("utf-8", "surrogateescape")


def test_strip_removes_apms_own_colours() -> None:
    rendered = render("ç214-2026-11-21 14:05:09ç59-.123456çR- ç51,0,1-api#1çR- ç196-!çR- ").encode()
    assert strip_ansi(rendered) == b"2026-11-21 14:05:09.123456 api#1 ! "
