"""grep over current + rotated files (chunked bytes regex) and tail_files, against naive references."""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alter.errors import UsageError
from alter.grepcore import Matcher
from alter.logs.colors import strip_ansi
from alter.logs.search import compile_pattern, grep, grep_file, tail_files


def naive(
    path: str, pattern: str, context: int, ignore_case: bool = False, strip: bool = False
) -> List[Dict[str, Any]]:
    with open(path, "rb") as f:
        data = f.read()
    if strip:
        data = strip_ansi(data)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    rx = re.compile(pattern.encode(), re.I if ignore_case else 0)
    out = []
    for i, line in enumerate(lines):
        if rx.search(line):
            dec = lambda b: b.rstrip(b"\r").decode("utf-8", "replace")  # noqa: E731
            out.append(
                {
                    "file": path,
                    "line_no": i + 1,
                    "line": dec(line),
                    "before": [dec(x) for x in lines[max(0, i - context) : i]],
                    "after": [dec(x) for x in lines[i + 1 : i + 1 + context]],
                }
            )
    return out


WORDS = ["alpha", "beta", "ERROR", "error", "", "x" * 30, "é✓", "\xff", "\x1b[31m", "\x1b[0m", "\x1b]0;t\x07"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join), max_size=40),
    trailing_newline=st.booleans(),
    pattern=st.sampled_from(["ERROR", "alpha|beta", "^beta", "a$", "é", "x{30}", "alpha beta", "31m"]),
    context=st.integers(0, 3),
    chunk=st.sampled_from([1, 2, 7, 16, 64, 4096]),
    strip=st.booleans(),
)
def test_grep_matches_naive(tmp_path, lines, trailing_newline, pattern, context, chunk, strip) -> None:
    path = str(tmp_path / "f.log")
    data = "\n".join(lines).encode("utf-8", "surrogateescape")
    if lines and trailing_newline:
        data += b"\n"
    with open(path, "wb") as f:
        f.write(data)
    got = list(grep_file(path, Matcher(pattern, strip=strip), context, None, chunk=chunk))
    assert got == naive(path, pattern, context, strip=strip)


def test_grep_across_files_in_order_with_limit(tmp_path) -> None:
    files = []
    for n, name in enumerate(["out.log.2", "out.log.1", "out.log"]):
        p = tmp_path / name
        p.write_bytes(b"".join(b"file%d line%d %s\n" % (n, i, b"hit" if i % 3 == 0 else b"miss") for i in range(10)))
        files.append(str(p))
    got = list(grep(files, "hit"))
    assert [(os.path.basename(m["file"]), m["line_no"]) for m in got][:5] == [
        ("out.log.2", 1),
        ("out.log.2", 4),
        ("out.log.2", 7),
        ("out.log.2", 10),
        ("out.log.1", 1),
    ]
    assert len(got) == 12
    assert len(list(grep(files, "hit", max_matches=5))) == 5
    assert list(grep(files + [str(tmp_path / "missing")], "nothing-matches")) == []


def test_compile_pattern_names_the_bad_pattern() -> None:
    with pytest.raises(UsageError) as exc:
        compile_pattern("a(b")
    assert "'a(b'" in exc.value.message and "regex" in exc.value.hint


def test_grep_ignore_case_and_bad_pattern(tmp_path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"Error here\nfine\nERROR there\n")
    assert [m["line"] for m in grep([str(p)], "error", ignore_case=True)] == ["Error here", "ERROR there"]
    assert [m["line"] for m in grep([str(p)], "error")] == []
    with pytest.raises(UsageError):
        list(grep([str(p)], "(unclosed"))


def test_grep_big_file_with_context_across_chunk_boundaries(tmp_path) -> None:
    p = tmp_path / "big.log"
    with open(p, "wb") as f:
        for i in range(200_000):
            f.write(
                b"2026-11-21 12:00:00.000000 api | request %06d %s\n"
                % (i, b"FAILED" if i % 50_000 == 49_999 else b"ok")
            )
    got = list(grep([str(p)], "FAILED", context=2))
    assert [m["line_no"] for m in got] == [50_000, 100_000, 150_000, 200_000]
    assert got[0]["before"][-1].endswith("request 049998 ok") and got[0]["after"][0].endswith("request 050000 ok")
    assert got[-1]["after"] == []


def test_tail_files(tmp_path) -> None:
    a, b = tmp_path / "out.log.1", tmp_path / "out.log"
    a.write_bytes(b"".join(b"old %d\n" % i for i in range(5)))
    b.write_bytes(b"".join(b"new %d\n" % i for i in range(3)))
    files = [str(a), str(b)]
    assert tail_files(files, 2) == ["new 1", "new 2"]
    assert tail_files(files, 5) == ["old 3", "old 4", "new 0", "new 1", "new 2"]
    assert tail_files(files, 100) == [f"old {i}" for i in range(5)] + [f"new {i}" for i in range(3)]
    assert tail_files(files, 0) == []
    b.write_bytes(b"no newline at end")
    assert tail_files(files, 2) == ["old 4", "no newline at end"]


def test_tail_files_big_file_reads_from_the_end(tmp_path) -> None:
    p = tmp_path / "big"
    with open(p, "wb") as f:
        for i in range(300_000):
            f.write(b"line %d\n" % i)
    assert tail_files([str(p)], 3) == ["line 299997", "line 299998", "line 299999"]
    assert len(tail_files([str(p)], 20_000)) == 20_000


def test_grep_strip_matches_what_a_reader_sees(tmp_path) -> None:
    p = tmp_path / "out.log"
    p.write_bytes(b"\x1b[38;5;214m2026-11-21 12:00:00\x1b[0m \x1b[38;5;51mapi\x1b[0m \x1b[38;5;244m|\x1b[0m GET /x\n")
    assert list(grep([str(p)], "api \\| GET")) == []
    [m] = grep([str(p)], "api \\| GET", strip=True)
    assert m["line"] == "2026-11-21 12:00:00 api | GET /x" and m["line_no"] == 1


@pytest.mark.parametrize("pattern", ["error", "ERROR", "Error Code", "é"])
def test_grep_ignore_case_literal_fast_path_matches_regex_path(tmp_path, pattern) -> None:
    p = tmp_path / "f"
    p.write_bytes("x\nan Error Code 1\nERROR\nerror\nfine\nÉ é\nerrOR code\n".encode())
    fast = list(grep([str(p)], pattern, ignore_case=True, context=1))
    slow = naive(str(p), re.escape(pattern), 1, ignore_case=True)
    assert fast == slow and fast
