"""The search engine of `apm grep` (docs/logs.md, "apm grep"): a leaf, stdlib only.

Imported by the CLI, which searches the log files itself when it can read them (no daemon
hop, no JSON per match), by the daemon's grep worker (alter/daemon/grep_worker.py) for
callers who cannot, and by alter/logs/search.py.  It must not import anything of apm but
`alter.errors` (the CLI's import rule, tests/unit/test_cli_imports.py).

Semantics: a line matches when the pattern (Python `re` syntax, on bytes) matches somewhere
in that line alone, without its newline — like grep.  With `strip` the pattern sees the line
as a reader does, without ANSI escapes.  `ignore_case` folds ASCII letters.

How it stays fast on big files:

* Files are read with `readinto` into one reused buffer (no allocation per chunk).
* `Matcher` parses the pattern (`re._parser`, `sre_parse` before 3.11) for literals that every
  match must contain (`ERROR|CRITICAL` -> either word; `user=[0-9]{4}7 .*timeout` -> `user=`,
  `7 ` and `timeout`, the rarest in the first chunk wins).  Candidates are found with
  `bytes.find` (several GB/s; sre's alternation scan is ~10x slower) and only their lines are
  checked with the regex.  A pattern that is nothing but literals needs no regex at all.
  Without a usable literal the regex runs over the whole chunk and each hit's line is checked
  alone; patterns with `\\A`, `\\Z` or lookarounds are checked line by line.
* `strip` without stripping: removing colour codes costs ~7 s per GB.  The literal search runs
  on the raw bytes when the chunk holds no escapes but the workers' own line heads (escape
  count == lines x escapes per head) and no head escape sits next to a character of the
  literals (so no occurrence can be split by one); other chunks are stripped.
* Line numbers come from `bytes.count(b"\\n")` between hits; lines are cut only around hits.
"""

from __future__ import annotations

import os
import re
import sys

from alter.errors import UsageError

if sys.version_info >= (3, 11):
    from re import _constants as _sre_c
    from re import _parser as _sre_parse
else:  # pragma: no cover - Python 3.9, 3.10 (importing these on 3.11+ warns)
    import sre_constants as _sre_c
    import sre_parse as _sre_parse

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its path
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Pattern, Sequence, Tuple, Union

    Hit = Tuple[int, bytes, List[bytes], List[bytes]]

CHUNK = 1024 * 1024
MAX_LINE = 1024 * 1024  # a "line" without a newline for this long is treated as ended (binary files)
MAX_ALTERNATIVES = 8  # more literals than this: not worth a find() pass each
_ESC = b"\x1b"

# ANSI escapes (the same grammar as alter.logs.colors, which the CLI may not import).
_ANSI = re.compile(
    rb"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|[PX^_][^\x1b\n]*(?:\x1b\\)?|[ -/]+[0-~]?|[0-~])?"
)
_SGR = re.compile(rb"\x1b\[[0-9;]*m")
_SGR_CHARS = frozenset(b"0123456789;[m\x1b")
_LOWER = bytes.maketrans(bytes(range(65, 91)), bytes(range(97, 123)))  # ASCII only, like re's bytes IGNORECASE


def strip_ansi(data: bytes) -> bytes:
    """Every ANSI escape removed: split on plain colour codes and join, the full regex only if others remain."""
    if _ESC not in data:
        return data
    fast = b"".join(_SGR.split(data))
    if _ESC not in fast:
        return fast
    return _ANSI.sub(b"", data)


def compile_pattern(pattern: Union[str, bytes], ignore_case: bool = False) -> Pattern[bytes]:
    raw = pattern.encode("utf-8", "surrogateescape") if isinstance(pattern, str) else pattern
    try:
        return re.compile(raw, re.MULTILINE | (re.IGNORECASE if ignore_case else 0))
    except re.error as exc:
        raise UsageError(
            f"invalid regular expression {pattern!r}: {exc}",
            hint="use Python regex syntax, e.g. 'ERROR|WARN' (escape special characters: '\\[' '\\(' '\\.')",
        ) from None
    except (OverflowError, RecursionError, ValueError) as exc:
        raise UsageError(
            f"invalid regular expression {pattern!r}: {exc}", hint="use a simpler pattern (Python regex syntax)"
        ) from None


# ------------------------------------------------------------------------------------------ pattern analysis

_OP = {name: getattr(_sre_c, name, None) for name in (
    "LITERAL", "BRANCH", "SUBPATTERN", "MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT", "ATOMIC_GROUP",
    "AT", "AT_BEGINNING_STRING", "AT_END_STRING", "ASSERT", "ASSERT_NOT", "GROUPREF_EXISTS",
)}  # fmt: skip
_REPEATS = tuple(op for op in (_OP["MAX_REPEAT"], _OP["MIN_REPEAT"], _OP["POSSESSIVE_REPEAT"]) if op is not None)
_LINE_ONLY = (_OP["ASSERT"], _OP["ASSERT_NOT"])


def _data(sub: Any) -> Any:
    return sub.data if hasattr(sub, "data") else sub


def _needs(items: Any, out: List[List[bytes]]) -> Optional[List[bytes]]:
    """Add to `out` the literal sets every match of `items` contains (one string of each set).

    Returns every whole match when `items` is nothing but literals (else None).
    """
    whole: Optional[List[bytes]] = [b""]
    run = bytearray()
    for op, av in items:
        if op == _OP["LITERAL"]:
            run.append(av)
            whole = [w + bytes((av,)) for w in whole] if whole is not None else None
            continue
        if run:
            out.append([bytes(run)])
            run = bytearray()
        sub_whole: Optional[List[bytes]] = None
        if op == _OP["SUBPATTERN"]:
            if (av[-3] | av[-2]) & re.IGNORECASE:
                whole = None
                continue  # the case rule changes inside: leave it to the regex
            sub_whole = _needs(_data(av[-1]), out)
        elif op == _OP["ATOMIC_GROUP"]:
            sub_whole = _needs(_data(av), out)
        elif op == _OP["BRANCH"]:
            wholes: List[Optional[List[bytes]]] = []
            needs: List[Optional[List[bytes]]] = []
            for branch in av[1]:
                found: List[List[bytes]] = []
                wholes.append(_needs(_data(branch), found))
                needs.append(_best(found))
            if all(needs):
                out.append([a for n in needs for a in (n or [])])
            if all(wholes):
                sub_whole = [a for w in wholes for a in (w or [])]
        elif op in _REPEATS and av[0] >= 1:
            _needs(_data(av[2]), out)
        if whole is not None and sub_whole and len(whole) * len(sub_whole) <= MAX_ALTERNATIVES:
            whole = [w + a for w in whole for a in sub_whole]
        else:
            whole = None
    if run:
        out.append([bytes(run)])
    return whole


def _score(alts: List[bytes]) -> Tuple[int, int]:
    return (min(len(a) for a in alts), -len(alts))


def _best(sets: List[List[bytes]]) -> Optional[List[bytes]]:
    usable = [s for s in sets if s and all(s) and len(s) <= MAX_ALTERNATIVES]
    return max(usable, key=_score) if usable else None


def _walk(items: Any) -> Iterator[Tuple[Any, Any]]:
    for op, av in items:
        yield op, av
        subs: List[Any] = []
        if op == _OP["SUBPATTERN"]:
            subs = [av[-1]]
        elif op == _OP["BRANCH"]:
            subs = list(av[1])
        elif op in _REPEATS:
            subs = [av[2]]
        elif op in (_OP["ASSERT"], _OP["ASSERT_NOT"]):
            subs = [av[1]]
        elif op == _OP["ATOMIC_GROUP"]:
            subs = [av]
        elif op == _OP["GROUPREF_EXISTS"]:
            subs = [s for s in av[1:] if s is not None]
        for sub in subs:
            yield from _walk(sub.data if hasattr(sub, "data") else sub)


class Matcher:
    """A compiled pattern plus what the search needs to know about it (see the module doc)."""

    def __init__(self, pattern: Union[str, bytes], ignore_case: bool = False, strip: bool = False) -> None:
        self.pattern = pattern
        self.regex = compile_pattern(pattern, ignore_case)
        self.strip = strip
        self.fold = bool(self.regex.flags & re.IGNORECASE)
        self.line_regex = self.regex  # run on one line (bytes) at a time
        self.exact = False  # True: a line matches iff it holds one of `literals` (no regex needed)
        self.per_line = False  # the pattern looks beyond its line (\A, \Z, lookarounds): check lines one by one
        self.literals: Optional[List[bytes]] = None
        self._choices: List[List[bytes]] = []
        self._rarity: Optional[List[int]] = None
        try:
            parse: Any = _sre_parse.parse  # (typeshed says str; bytes patterns parse the same way)
            tree = parse(self.regex.pattern, self.regex.flags & ~re.MULTILINE)
        except Exception:  # a parser quirk only costs the prefilter
            return
        data = tree.data if hasattr(tree, "data") else tree
        for op, av in _walk(data):
            if op in _LINE_ONLY or (op == _OP["AT"] and av in (_OP["AT_BEGINNING_STRING"], _OP["AT_END_STRING"])):
                self.per_line = True
        sets: List[List[bytes]] = []
        whole = _needs(data, sets)
        if self.fold:
            sets = [[a.lower() for a in s] for s in sets]
            whole = [a.lower() for a in whole] if whole is not None else None
        if whole and all(whole) and len(whole) <= MAX_ALTERNATIVES and not self.per_line:
            self.exact = True
            self.literals = sorted(set(whole))
            return
        usable = [s for s in sets if s and all(s) and len(s) <= MAX_ALTERNATIVES]
        usable.sort(key=_score, reverse=True)
        self._choices = usable[:4]
        if self._choices:
            self.literals = self._choices[0]

    def pick(self, data: Any, near: FrozenSet[int]) -> Optional[List[bytes]]:
        """The literal set to search for: one whose characters are not in `near` (see head_profile),
        then the rarest in `data` (the first chunk searched; counted once)."""
        if len(self._choices) <= 1:
            return self.literals
        if self._rarity is None:
            view = data.lower() if self.fold else data
            self._rarity = [sum(view.count(a) for a in s) for s in self._choices]
        rarity = self._rarity
        k = min(
            range(len(self._choices)),
            key=lambda i: (
                any(c in near for a in self._choices[i] for c in a),
                rarity[i],
                -_score(self._choices[i])[0],
            ),
        )
        return self._choices[k]

    def line_matches(self, line: bytes) -> bool:
        """Does `line` (raw, no newline) match?  With `strip`, escapes are removed first."""
        if self.strip and _ESC in line:
            line = strip_ansi(line)
        if self.exact and self.literals is not None:
            view = line.lower() if self.fold else line
            return any(a in view for a in self.literals)
        return self.line_regex.search(line) is not None

    def raw_hit_is_match(self) -> bool:
        """For an exact literal set: is a raw hit always a match (no escape can overlap a literal)?"""
        if not self.strip:
            return True
        return all(a[0] not in _SGR_CHARS and _ESC not in a for a in (self.literals or []))


# ------------------------------------------------------------------------------------------ line heads


def head_profile(samples: Sequence[bytes]) -> Optional[Tuple[int, FrozenSet[int]]]:
    """(escapes per head, characters next to a head escape) from rendered head samples, or None.

    None when the samples disagree on the escape count or a head ends in an escape (the text
    that follows would be next to it).  Digits stand for every digit (timestamps change).
    """
    if not samples:
        return None
    counts = {s.count(_ESC) for s in samples}
    if len(counts) != 1:
        return None
    near = set()
    for s in samples:
        pieces = _ANSI.split(s)
        if len(pieces) > 1 and pieces[-1] == b"":
            return None
        text = [p for p in pieces]
        for k in range(len(text) - 1):
            left, right = text[k], text[k + 1]
            if left:
                near.add(left[-1])
            if right:
                near.add(right[0])
    if near & set(b"0123456789"):
        near |= set(b"0123456789")
    return counts.pop(), frozenset(near)


# ------------------------------------------------------------------------------------------ search


def _before(buf: Any, start: int, count: int) -> List[bytes]:
    out: List[bytes] = []
    while len(out) < count and start > 0:
        nl = start - 1
        prev = buf.rfind(b"\n", 0, nl) + 1
        out.append(bytes(buf[prev:nl]))
        start = prev
    out.reverse()
    return out


def _after(buf: Any, end: int, stop: int, count: int, eof: bool) -> Tuple[List[bytes], bool]:
    out: List[bytes] = []
    pos = end + 1
    while len(out) < count and pos < stop:
        nl = buf.find(b"\n", pos, stop)
        if nl < 0:
            if not eof:
                return out, False
            out.append(bytes(buf[pos:stop]))
            break
        out.append(bytes(buf[pos:nl]))
        pos = nl + 1
    return out, eof or len(out) == count


def _lines(
    m: Matcher, buf: Any, sbuf: Any, at: int, limit: int, literals: Optional[List[bytes]], verify: bool
) -> Iterator[Tuple[int, int]]:
    """(start, end) of each matching line in buf[at:limit] (whole lines; `at` starts one)."""
    if literals is not None and verify and not m.per_line and not m.exact:
        yield from _bulk(m, buf, sbuf, at, limit, literals)
        return
    nxt = [-1] * len(literals) if literals is not None else []
    while at < limit:
        if literals is not None:
            pos = limit
            for i, lit in enumerate(literals):
                p = nxt[i]
                if p < at:
                    p = sbuf.find(lit, at, limit)
                    nxt[i] = p = limit if p < 0 else p
                if p < pos:
                    pos = p
            if pos >= limit:
                return
        elif m.per_line:
            pos = at
        else:
            hit = m.regex.search(buf, at, limit)
            if hit is None or hit.start() >= limit:
                return
            pos = hit.start()
        ls = buf.rfind(b"\n", 0, pos) + 1 if pos > at else at
        le = buf.find(b"\n", pos, limit)
        if le < 0:
            le = limit
        if not verify or m.line_matches(bytes(buf[ls:le])):
            yield ls, le
        at = le + 1


def _bulk(m: Matcher, buf: Any, sbuf: Any, at: int, limit: int, literals: List[bytes]) -> Iterator[Tuple[int, int]]:
    """`_lines` for a regex with a literal prefilter: the candidate lines are joined (stripped once
    when asked) and searched with one regex pass; each hit's line is then checked alone."""
    spans: List[Tuple[int, int]] = []
    pieces: List[Any] = []
    nxt = [-1] * len(literals)
    while at < limit:
        pos = limit
        for i, lit in enumerate(literals):
            p = nxt[i]
            if p < at:
                p = sbuf.find(lit, at, limit)
                nxt[i] = p = limit if p < 0 else p
            if p < pos:
                pos = p
        if pos >= limit:
            break
        ls = buf.rfind(b"\n", 0, pos) + 1 if pos > at else at
        le = buf.find(b"\n", pos, limit)
        if le < 0:
            le = limit
        spans.append((ls, le))
        pieces.append(buf[ls:le])
        at = le + 1
    if not spans:
        return
    joined = b"\n".join(pieces)
    if m.strip:
        joined = strip_ansi(joined)
    regex = m.regex
    index, counted, start = 0, 0, 0
    while True:
        hit = regex.search(joined, start)
        if hit is None:
            return
        pos = hit.start()
        index += joined.count(b"\n", counted, pos)
        if index >= len(spans):
            return
        ls = joined.rfind(b"\n", 0, pos) + 1
        le = joined.find(b"\n", pos)
        if le < 0:
            le = len(joined)
        if regex.search(joined[ls:le]) is not None:
            yield spans[index]
        if le >= len(joined):
            return
        counted = start = le + 1
        index += 1


def search_file(
    path: str,
    matcher: Matcher,
    context: int = 0,
    max_matches: Optional[int] = None,
    heads: Optional[Sequence[bytes]] = None,
    chunk: int = CHUNK,
) -> Iterator[Hit]:
    """(line number, line, before, after) of every matching line of one file, in order.

    Lines are bytes without the newline; with `matcher.strip` they may still hold colour codes
    (strip them for display).  `heads`: rendered line heads of the worker (see head_profile).
    A file that cannot be opened yields nothing.
    """
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the `with f:` below
    except OSError:
        return
    with f:
        yield from _search(f, matcher, context, max_matches, heads, max(1, chunk))


def _search(
    f: Any, m: Matcher, context: int, max_matches: Optional[int], heads: Optional[Sequence[bytes]], chunk: int
) -> Iterator[Hit]:
    profile = head_profile(heads) if (m.strip and heads and m.literals) else None
    near: FrozenSet[int] = profile[1] if profile else frozenset()
    esc_per_line = profile[0] if profile else 0
    literals = m.literals
    raw_ok = False
    verify = not (m.exact and m.raw_hit_is_match())
    full = literals is None
    found = 0
    buf = bytearray(2 * chunk + 4096)
    view = memoryview(buf)
    n = 0  # bytes of data in buf
    clean = 0  # buf[:clean]: whole lines, stripped or checked (strip mode), searchable
    search_at = 0
    ln_pos, ln_no = 0, 1  # buf[ln_pos] starts line number ln_no
    eof = False
    sampled = False
    try:
        while True:
            keep = min(search_at, n)
            for _ in range(context):
                if keep <= 0:
                    break
                keep = buf.rfind(b"\n", 0, keep - 1) + 1
            if keep:
                ln_no += buf.count(b"\n", ln_pos, keep) if keep > ln_pos else 0
                ln_pos = max(0, ln_pos - keep)
                rest = n - keep
                view[:rest] = view[keep:n]
                n, clean, search_at = rest, clean - keep, search_at - keep
            if len(buf) - n < chunk:
                view.release()
                buf.extend(bytes(chunk + len(buf)))
                view = memoryview(buf)
            got = f.readinto(view[n : n + chunk])
            if not got:
                eof = True
            else:
                n += got
            if not sampled and literals is not None:
                literals = m.pick(buf[:n], near)
                raw_ok = profile is not None and not any(c in near for lit in (literals or []) for c in lit)
                sampled = True
            limit = n if eof else buf.rfind(b"\n", 0, n) + 1
            if limit <= search_at and not eof:
                if n - search_at < MAX_LINE:
                    continue
                limit = n
            end_pos = -1  # when >= 0: buf[end_pos] starts line number end_no (counted for the guard)
            end_no = 0
            if m.strip and limit > clean and buf.find(_ESC, clean, limit) >= 0:
                newlines = buf.count(b"\n", clean, limit)
                lines = newlines + (0 if buf[limit - 1] == 10 else 1)
                if full or not raw_ok or buf.count(_ESC, clean, limit) != lines * esc_per_line:
                    stripped = strip_ansi(bytes(buf[clean:limit]))
                    shrink = (limit - clean) - len(stripped)
                    view[clean : clean + len(stripped)] = stripped
                    view[limit - shrink : n - shrink] = view[limit:n]
                    limit -= shrink
                    n -= shrink
                if ln_pos <= clean:
                    end_pos, end_no = limit, ln_no + buf.count(b"\n", ln_pos, clean) + newlines
            clean = max(clean, limit)
            sbuf = buf.translate(_LOWER) if (m.fold and literals is not None) else buf  # (2x bytearray.lower())
            deferred = False
            at = search_at
            for ls, le in _lines(m, buf, sbuf, at, limit, literals, verify):
                line = bytes(buf[ls:le])
                after: List[bytes] = []
                if context:
                    after, complete = _after(buf, le, limit if not eof else n, context, eof)
                    if not complete:
                        deferred = True  # the after-context is in the next chunk: come back to this line
                        at = ls
                        break
                before = _before(buf, ls, context) if context else []
                if ls > ln_pos:
                    if end_pos >= ls and end_pos - ls < ls - ln_pos:
                        ln_no = end_no - buf.count(b"\n", ls, end_pos)  # nearer the end of the counted chunk
                    else:
                        ln_no += buf.count(b"\n", ln_pos, ls)
                    ln_pos = ls
                yield ln_no, line, before, after
                found += 1
                if max_matches is not None and found >= max_matches:
                    return
            if eof:
                return  # (at EOF the after-context is always complete: nothing is deferred)
            search_at = at if deferred else limit
            if end_pos >= ln_pos and not deferred:
                ln_pos, ln_no = end_pos, end_no
    finally:
        view.release()


# ------------------------------------------------------------------------------------------ output


def display(line: bytes, strip: bool) -> str:
    """A line as shown: escapes removed when asked, a trailing CR dropped, invalid UTF-8 replaced."""
    if strip and _ESC in line:
        line = strip_ansi(line)
    return line.rstrip(b"\r").decode("utf-8", "replace")


def match_dict(worker: str, path: str, hit: Hit, strip: bool) -> Dict[str, Any]:
    """The protocol's Match object (docs/protocol.md, "grep")."""
    no, line, before, after = hit
    return {
        "worker": worker,
        "file": path,
        "line_no": no,
        "line": display(line, strip),
        "before": [display(x, strip) for x in before],
        "after": [display(x, strip) for x in after],
    }


_STYLE = {"label": b"\x1b[36m", "sep": b"\x1b[2m", "number": b"\x1b[32m"}
_MATCH = "\x1b[31;1m"
_RESET = b"\x1b[0m"
_CRLF = re.compile(rb"\r+\n")


class TextWriter:
    """grep-style output: `worker/file:N:line`, context `worker/file-N-line`, `--` between groups.

    `add()` takes lines as found (bytes); overlapping contexts are printed once (a match's
    after-context stops where the next match starts).  Output goes to `write` in blocks of about
    `batch` bytes; without colour each block is cleaned at once (escapes removed when `strip`,
    trailing CRs dropped, invalid UTF-8 replaced: what `display()` does per line).  With `color`,
    labels are coloured and the matched text highlighted (`highlight`: a str regex).
    """

    def __init__(
        self,
        write: Callable[[bytes], Any],
        strip: bool = True,
        color: bool = False,
        highlight: Any = None,
        batch: int = 256 * 1024,
    ) -> None:
        self.write = write
        self.strip = strip
        self.color = color
        self.highlight = highlight if color else None
        self.batch = batch
        self.parts: List[bytes] = []
        self.size = 0
        self.count = 0
        self.held: Optional[Tuple[str, str, Hit]] = None
        self.last: Tuple[str, int] = ("", 0)
        self._labels: Dict[Tuple[str, str], bytes] = {}

    def add(self, worker: str, path: str, hit: Hit) -> None:
        item = (worker, path, hit)
        if self.held is not None:
            self._print(self.held, item)
        self.held = item
        if self.size >= self.batch:
            self.flush(final=False)

    def flush(self, final: bool = True) -> None:
        if final and self.held is not None:
            self._print(self.held, None)
            self.held = None
        if not self.parts:
            return
        data = b"".join(self.parts)
        self.parts = []
        self.size = 0
        if not self.color:
            if self.strip:
                data = strip_ansi(data)
            if b"\r" in data:
                data = _CRLF.sub(b"\n", data)
            if not data.isascii():
                data = data.decode("utf-8", "replace").encode("utf-8")
        self.write(data)

    def _text(self, line: bytes, mark: bool = False) -> bytes:
        if not self.color:
            return line  # cleaned per block in flush()
        text = display(line, self.strip)
        if mark and self.highlight is not None:
            text = self.highlight.sub(lambda m: f"{_MATCH}{m.group(0)}\x1b[0m" if m.group(0) else "", text)
        return text.encode("utf-8", "replace")

    def _label(self, worker: str, path: str) -> bytes:
        label = self._labels.get((worker, path))
        if label is None:
            label = f"{worker}/{os.path.basename(path)}".encode("utf-8", "replace")
            if self.color:
                label = _STYLE["label"] + label + _RESET
            self._labels[(worker, path)] = label
        return label

    def _line(self, label: bytes, no: int, sep: bytes, text: bytes) -> bytes:
        if not self.color:
            return b"%s%s%d%s%s\n" % (label, sep, no, sep, text)
        s, r = _STYLE, _RESET
        return b"%s%s%s%s%s%d%s%s%s%s%s\n" % (label, s["sep"], sep, r, s["number"], no, r, s["sep"], sep, r, text)

    def _print(self, item: Tuple[str, str, Hit], following: Optional[Tuple[str, str, Hit]]) -> None:
        worker, path, (no, line, before, after) = item
        self.count += 1
        out = self.parts
        label = self._label(worker, path)
        first = no - len(before)
        last_path, last_no = self.last
        if (before or after) and self.count > 1 and (path != last_path or first > last_no + 1):
            out.append(_STYLE["sep"] + b"--" + _RESET + b"\n" if self.color else b"--\n")
        for k, text in enumerate(before):
            at = first + k
            if path == last_path and at <= last_no:
                continue
            out.append(self._line(label, at, b"-", self._text(text)))
        out.append(self._line(label, no, b":", self._text(line, True)))
        stop = following[2][0] if following is not None and following[1] == path else None
        shown = no
        for k, text in enumerate(after):
            at = no + 1 + k
            if stop is not None and at >= stop:
                break
            out.append(self._line(label, at, b"-", self._text(text)))
            shown = at
        self.last = (path, shown)
        self.size += len(line) + 40 + sum(len(x) + 40 for x in before) + sum(len(x) + 40 for x in after)
