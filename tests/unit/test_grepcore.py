"""alter/grepcore.py: the `apm grep` engine against a naive line-by-line reference and GNU grep.

The reference strips every escape of the whole file, splits lines and runs `re.search` on each:
what the documented semantics say.  The engine's shortcuts (literal prefilter, raw search guarded
by the line-head profile, bulk verification, chunked reading) must never change the result.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alter.errors import UsageError
from alter.grepcore import Matcher, TextWriter, compile_pattern, head_profile, search_file, strip_ansi

HEADS = [
    b"\x1b[38;5;214m2026-11-21 16:45:11\x1b[38;5;59m.553394\x1b[0m \x1b[38;5;51mapi\x1b[0m \x1b[38;5;244m|\x1b[0m ",
    b"\x1b[38;5;214m2026-10-02 06:05:01\x1b[38;5;59m.000017\x1b[0m \x1b[38;5;82mapi#2\x1b[0m \x1b[38;5;196m!\x1b[0m ",
]
OTHER_HEAD = b"\x1b[1m2026\x1b[0m api | "  # lines written under another format: other escape count
TEXTS = [
    "CRITICAL disk full",
    "ERROR connection refused",
    "user=12347 request timeout after 30s",
    "user=55 ok",
    "GET /api/users/7 200",
    "error: lower case",
    "Critical mixed",
    "ERR\x1b[1mOR split by the child",  # a colour code inside a word: the text as read says ERROR
    "CRIT\x1b[31mICAL\x1b[0m too",
    "\x1b]0;title\x07osc then text",
    "é✓ unicode",
    "\udcff\udcfe invalid utf-8",
    "trailing cr\r",
    "",
    "abab backref",
    "timeout timeout",
]
PATTERNS = [
    "CRITICAL",
    "ERROR|CRITICAL",
    r"user=[0-9]{4}7 .*timeout",
    "timeout",
    r"^\S+ \S+ api",
    r"api \| GET",  # across the head's colour codes
    r"\d{3}$",
    r"(?<=ERR)OR",
    r"(ab)\1",
    r"\Auser",
    r"full\Z",
    r"(?i)critical",
    r"ok|é",
    r"[A-Z]{5,}",
    r"x*",
    "31m",
    "title",
    "09\\.5",
]


def naive(path: str, pattern: str, context: int, ignore_case: bool, strip: bool) -> List[Tuple[Any, ...]]:
    with open(path, "rb") as f:
        data = f.read()
    if strip:
        data = strip_ansi(data)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    rx = re.compile(pattern.encode(), re.IGNORECASE if ignore_case else 0)
    return [
        (i + 1, line, lines[max(0, i - context) : i], lines[i + 1 : i + 1 + context])
        for i, line in enumerate(lines)
        if rx.search(line)
    ]


def found(path: str, m: Matcher, context: int, heads: Optional[List[bytes]], chunk: int) -> List[Tuple[Any, ...]]:
    clean = strip_ansi if m.strip else (lambda b: b)
    return [
        (no, clean(line), [clean(x) for x in before], [clean(x) for x in after])
        for no, line, before, after in search_file(path, m, context, None, heads=heads, chunk=chunk)
    ]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.sampled_from([0, 0, 0, 1, 2]), st.sampled_from(TEXTS)), max_size=40),
    trailing_newline=st.booleans(),
    pattern=st.sampled_from(PATTERNS),
    ignore_case=st.booleans(),
    strip=st.booleans(),
    context=st.integers(0, 3),
    chunk=st.sampled_from([1, 5, 64, 300, 1 << 16]),
    with_heads=st.booleans(),
)
def test_search_matches_the_naive_reference(
    tmp_path, rows, trailing_newline, pattern, ignore_case, strip, context, chunk, with_heads
) -> None:
    heads = [HEADS[0], HEADS[1], OTHER_HEAD]
    data = b"\n".join(heads[h] + t.encode("utf-8", "surrogateescape") for h, t in rows)
    if rows and trailing_newline:
        data += b"\n"
    path = str(tmp_path / "out.log")
    with open(path, "wb") as f:
        f.write(data)
    m = Matcher(pattern, ignore_case, strip)
    got = found(path, m, context, HEADS if with_heads else None, chunk)
    assert got == naive(path, pattern, context, ignore_case, strip)


def test_raw_search_under_head_guard_still_sees_split_words(tmp_path) -> None:
    """The fast raw search is used for clean chunks; a chunk where the child wrote escapes is stripped."""
    clean = b"".join(HEADS[0] + b"INFO line %d\n" % i for i in range(5000))
    split = HEADS[0] + b"CRIT\x1b[1mICAL inside a word\n"
    path = str(tmp_path / "out.log")
    with open(path, "wb") as f:
        f.write(clean + HEADS[0] + b"CRITICAL plain\n" + clean + split + clean)
    m = Matcher("CRITICAL", strip=True)
    got = [(no, strip_ansi(line)) for no, line, _, _ in search_file(path, m, heads=HEADS, chunk=4096)]
    assert [no for no, _ in got] == [5001, 10002]
    assert got[1][1].endswith(b"| CRITICAL inside a word")
    # Without --raw semantics the same word is not found in the raw bytes.
    assert [no for no, *_ in search_file(path, Matcher("CRITICAL"), chunk=4096)] == [5001]


def test_head_profile() -> None:
    count, near = head_profile(HEADS) or (0, frozenset())
    assert count == 7
    assert set(b"0123456789 |!") <= near and not set(b"CRITICAL") & near and ord("i") in near  # `api` is coloured
    assert head_profile([HEADS[0], OTHER_HEAD]) is None  # different escape counts: no guard possible
    assert head_profile([b"\x1b[1mtail escape\x1b[0m"]) is None  # the text would follow an escape
    assert head_profile([]) is None


@pytest.mark.parametrize(
    "pattern, ignore_case, exact, per_line, literals",
    [
        ("CRITICAL", False, True, False, [b"CRITICAL"]),
        ("ERROR|CRITICAL", False, True, False, [b"CRITICAL", b"ERROR"]),
        ("(foo|bar)baz", False, True, False, [b"barbaz", b"foobaz"]),
        ("Critical", True, True, False, [b"critical"]),
        ("(?i)Critical", False, True, False, [b"critical"]),
        (r"user=[0-9]{4}7 .*timeout", False, False, False, [b"timeout"]),
        (r"(?:x|y)+foo", False, False, False, [b"foo"]),
        (r"(?<=ERR)OR", False, False, True, [b"OR"]),
        (r"\Abegin", False, False, True, [b"begin"]),
        (r"(ab)\1", False, False, False, [b"ab"]),
        (r"\d+", False, False, False, None),
        ("", False, False, False, None),
        ("a|", False, False, False, None),
        ("(?i:abc)", False, False, False, None),  # a scoped case flag: left to the regex
    ],
)
def test_pattern_analysis(pattern, ignore_case, exact, per_line, literals) -> None:
    m = Matcher(pattern, ignore_case)
    assert (m.exact, m.per_line, m.literals) == (exact, per_line, literals)


@pytest.mark.parametrize("pattern", ["(unclosed", "[a-", "a{2,1}", "(?P<x>a)(?P<x>b)", "\\", "*x", "(?<=a+)b"])
def test_malformed_patterns_are_usage_errors_naming_the_pattern(pattern) -> None:
    with pytest.raises(UsageError) as exc:
        Matcher(pattern)
    assert repr(pattern) in exc.value.message and "invalid regular expression" in exc.value.message
    assert exc.value.hint
    with pytest.raises(UsageError):
        compile_pattern(pattern.encode())


def _write_files(tmp_path) -> List[str]:
    names = []
    for n, name in enumerate(["out.log.2", "out.log.1", "out.log"]):
        lines = [b"file%d line %03d %s" % (n, i, b"hit" if i % 7 in (0, 1) or i == 30 else b"miss") for i in range(40)]
        (tmp_path / name).write_bytes(b"\n".join(lines) + b"\n")
        names.append(name)
    return names


@pytest.mark.skipif(shutil.which("grep") is None, reason="GNU grep is the reference here")
@pytest.mark.parametrize("context", [0, 1, 3])
def test_text_output_is_grep_output(tmp_path, context) -> None:
    """`worker/file:N:line`, `-` context lines, `--` between groups: byte for byte what grep -n -H -C prints."""
    names = _write_files(tmp_path)
    ref = subprocess.run(
        ["grep", "-a", "-n", "-H", "-E", *(["-C", str(context)] if context else []), "hit", *names],
        cwd=tmp_path,
        capture_output=True,
        env=dict(os.environ, LC_ALL="C"),
    ).stdout
    chunks: List[bytes] = []
    writer = TextWriter(chunks.append, strip=True, batch=64)
    m = Matcher("hit", strip=True)
    for name in names:
        path = str(tmp_path / name)
        for hit in search_file(path, m, context):
            writer.add("w", path, hit)
    writer.flush()
    assert len(chunks) > 1  # written in blocks
    expected = b"".join(b"w/" + line + b"\n" if line != b"--" else b"--\n" for line in ref.splitlines())
    assert b"".join(chunks) == expected


def test_text_output_cleans_lines_like_display(tmp_path) -> None:
    out: List[bytes] = []
    writer = TextWriter(out.append, strip=True)
    writer.add("w", "/x/out.log", (3, b"\x1b[31mred\x1b[0m \xff end\r\r", [], []))
    writer.flush()
    assert out == ["w/out.log:3:red \ufffd end\n".encode()]
    colored: List[bytes] = []
    writer = TextWriter(colored.append, strip=False, color=True, highlight=re.compile("red"))
    writer.add("w", "/x/out.log", (3, b"\x1b[31mred\x1b[0m", [], []))
    writer.flush()
    assert b"\x1b[31;1mred\x1b[0m" in colored[0] and b"\x1b[36mw/out.log\x1b[0m" in colored[0]


def test_max_matches_and_missing_file(tmp_path) -> None:
    names = _write_files(tmp_path)
    path = str(tmp_path / names[0])
    assert len(list(search_file(path, Matcher("hit"), max_matches=3))) == 3
    assert list(search_file(str(tmp_path / "gone.log"), Matcher("hit"))) == []


def test_long_line_without_newline_is_searched(tmp_path) -> None:
    path = tmp_path / "bin.log"
    path.write_bytes(b"x" * (3 << 20) + b"NEEDLE" + b"y" * 100)
    [(no, line, _, _)] = search_file(str(path), Matcher("NEEDLE"), chunk=1 << 16)
    assert no == 1 and b"NEEDLE" in line
