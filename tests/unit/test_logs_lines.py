"""Line assembly: any chunking gives the same lines; long lines are cut; odd bytes survive."""

from __future__ import annotations

from typing import List, Sequence, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from alter.logs.lines import LINE_MAX, LineAssembler, cut_point

Line = Tuple[bytes, bool]  # (text, is a continuation)


def reference(data: bytes, limit: int) -> List[Line]:
    """What splitting the whole input at once must give."""
    lines = data.split(b"\n")
    last = lines.pop()
    if last:
        lines.append(last)
    out: List[Line] = []
    for line in lines:
        cont = False
        while len(line) > limit:
            cut = cut_point(line, limit)
            out.append((line[:cut], cont))
            cont = True
            line = line[cut:]
        out.append((line, cont))
    return out


def assemble(chunks: Sequence[bytes], limit: int = LINE_MAX) -> List[Line]:
    asm = LineAssembler(limit)
    blocks = []
    for c in chunks:
        blocks.extend(asm.feed(c))
    blocks.extend(asm.close())
    out: List[Line] = []
    for block, cont in blocks:
        assert block.endswith(b"\n")
        parts = block[:-1].split(b"\n")
        out.append((parts[0], cont))
        out.extend((p, False) for p in parts[1:])
    return out


def split_at(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


PIECES = [
    b"\n",
    b"\n",
    b"a",
    b"bc",
    b"\xc3\xa9",
    b"\xe2\x9c\x93",
    b"\xf0\x9f\x98\x80",
    b"\xff",
    b"\x00",
    b"\x1b[31m",
    b"\r",
    b"x" * 9,
]
data_st = st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(PIECES), max_size=120).map(b"".join))


@settings(max_examples=400, deadline=None)
@given(
    data=data_st,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=25),
    limit=st.sampled_from([4, 5, 7, 16, 64]),
)
def test_any_chunking_gives_the_same_lines(data: bytes, cuts: List[int], limit: int) -> None:
    assert assemble(split_at(data, cuts), limit) == reference(data, limit)


@settings(max_examples=100, deadline=None)
@given(data=data_st, limit=st.sampled_from([4, 9, 64]))
def test_byte_by_byte(data: bytes, limit: int) -> None:
    assert assemble([data[i : i + 1] for i in range(len(data))], limit) == reference(data, limit)


def test_every_single_split_point_with_long_lines() -> None:
    data = b"short\n" + "é✓".encode() * 7 + b"\n\n" + b"y" * 40 + b"\nend-no-newline"
    want = reference(data, 10)
    assert any(cont for _, cont in want)  # the sample does exercise continuations
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1, 3):
            assert assemble([data[:i], data[i:j], data[j:]], 10) == want, (i, j)


def test_default_limit_is_64k_and_continuations_are_marked() -> None:
    long = b"z" * (LINE_MAX * 2 + 10)
    lines = assemble([b"before\n" + long + b"\nafter\n"])
    assert [len(t) for t, _ in lines] == [6, LINE_MAX, LINE_MAX, 10, 5]
    assert [c for _, c in lines] == [False, False, True, True, False]
    assert b"".join(t for t, _ in lines[1:4]) == long


def test_line_of_exactly_the_limit_is_not_cut() -> None:
    assert assemble([b"q" * LINE_MAX + b"\n"]) == [(b"q" * LINE_MAX, False)]


def test_utf8_character_never_cut() -> None:
    text = "€".encode() * 10  # 3 bytes each
    lines = assemble([text + b"\n"], limit=8)
    assert [t for t, _ in lines] == ["€€".encode()] * 5
    for t, _ in lines:
        t.decode("utf-8")  # each piece is valid UTF-8 on its own


def test_invalid_utf8_cut_at_limit() -> None:
    data = b"\x80" * 20
    lines = assemble([data + b"\n"], limit=8)
    assert [len(t) for t, _ in lines] == [8, 8, 4]


def test_partial_last_line_flushed_on_close() -> None:
    asm = LineAssembler()
    assert asm.feed(b"one\ntw") == [(b"one\n", False)]
    assert asm.pending == 2
    assert asm.feed(b"o") == []
    assert asm.close() == [(b"two\n", False)]
    assert asm.close() == []


def test_common_case_returns_the_chunk_itself() -> None:
    asm = LineAssembler()
    chunk = b"a\nb\nc\n" * 1000
    [(block, cont)] = asm.feed(chunk)
    assert block is chunk and cont is False


def test_binary_and_empty_lines() -> None:
    data = b"\x00\x01\x02\n\n\xff\xfe\r\n\n"
    assert assemble([data]) == [(b"\x00\x01\x02", False), (b"", False), (b"\xff\xfe\r", False), (b"", False)]


def test_huge_pending_without_newline_is_cut_as_it_grows() -> None:
    asm = LineAssembler(16)
    out = []
    for _ in range(10):
        out.extend(asm.feed(b"x" * 7))
    assert asm.pending <= 16
    assert [len(b) - 1 for b, _ in out] == [16, 16, 16, 16]
    assert [c for _, c in out] == [False, True, True, True]


# ------------------------------------------------------------------ take(): the zero-copy hot path


def assemble_taking(chunks: Sequence[bytes], limit: int = LINE_MAX) -> Tuple[List[Line], int]:
    """Like StreamWriter.feed: take() first, feed() when take() declines; (lines, chunks taken)."""
    asm = LineAssembler(limit)
    blocks: List[Tuple[bytes, bool]] = []
    taken = 0
    for c in chunks:
        got = asm.take(c)
        if got is None:
            blocks.extend(asm.feed(c))
        else:
            lead, end, cont = got
            assert 0 < end <= len(c) and c[end - 1 : end] == b"\n" and b"\n" not in c[end:]
            blocks.append((lead + c[:end], cont))
            taken += 1
    blocks.extend(asm.close())
    out: List[Line] = []
    for block, cont in blocks:
        assert block.endswith(b"\n")
        parts = block[:-1].split(b"\n")
        assert all(len(p) <= limit for p in parts), "take() let a line longer than the limit through"
        out.append((parts[0], cont))
        out.extend((p, False) for p in parts[1:])
    return out, taken


@settings(max_examples=400, deadline=None)
@given(
    data=data_st,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=25),
    limit=st.sampled_from([4, 5, 7, 16, 64]),
)
def test_take_then_feed_gives_the_same_lines_as_feed(data: bytes, cuts: List[int], limit: int) -> None:
    chunks = split_at(data, cuts)
    got, _ = assemble_taking(chunks, limit)
    assert got == reference(data, limit) == assemble(chunks, limit)


def test_take_common_case_copies_nothing_and_keeps_the_partial_line() -> None:
    asm = LineAssembler(64)
    assert asm.take(b"no newline yet") is None  # declined: feed() keeps it pending
    assert asm.feed(b"no newline yet") == []
    chunk = b" ...done\nsecond\nthird par"
    lead, end, cont = asm.take(chunk)
    assert (lead, chunk[:end], cont) == (b"no newline yet", b" ...done\nsecond\n", False)
    assert asm.pending == len(b"third par")
    assert asm.close() == [(b"third par\n", False)]


def test_take_declines_long_lines_and_changes_nothing() -> None:
    asm = LineAssembler(8)
    assert asm.feed(b"12345") == []
    assert asm.take(b"6789\nok\n") is None  # the first line (with the pending part) is 9 bytes
    assert asm.pending == 5
    assert asm.take(b"ok\n" + b"y" * 20 + b"\nz\n") is None  # a long line in the middle
    assert asm.take(b"\n" + b"w" * 9) is None  # the new partial line is already too long
    assert asm.feed(b"6789\nok\n") == [(b"12345678\n", False), (b"9\n", True), (b"ok\n", False)]
