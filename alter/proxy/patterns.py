"""Path patterns (`ban_path`) and the request-path normalisation they match against.

The four pattern modes are the manual's (the same as the file watcher's):

    *.ext      ends-with      *.php        -> /index.php, /a/b.php
    prefix*    starts-with    /.git*       -> /.git/config, /.github
    *word*     contains       *wp-*        -> /wp-login.php, /blog/wp-admin/
    exact      exact match    /admin/login -> /admin/login only

A `*` anywhere else is a wildcard for any run of characters (a superset the
manual does not forbid); `*` alone matches everything.

A ban must not be bypassable by spelling the same resource differently, so a
request path is matched in several *candidate* forms and a pattern hits when it
matches any of them (see `path_candidates`): percent-decoded once and until
stable, with dot segments resolved, repeated slashes collapsed, backslashes
read as slashes, `;params` removed and a trailing slash dropped.  Matching is
case-insensitive.  A path whose decoding yields a NUL or another control
character, or whose dot segments climb above the root, is refused outright
(`BadPath`, answered 400).
"""

from __future__ import annotations

import re
from typing import List, Sequence, Set, Tuple
from urllib.parse import unquote_to_bytes

ENDS, STARTS, CONTAINS, EXACT, GLOB, ANY = "ends", "starts", "contains", "exact", "glob", "any"


class BadPath(ValueError):
    """The request path cannot be normalised safely (answer 400)."""


def classify(pattern: str) -> Tuple[str, str]:
    """`*.php` -> ("ends", ".php"); `/a*` -> ("starts", "/a"); `*wp-*` -> ("contains", "wp-")."""
    p = pattern.strip()
    if p.strip("*") == "":
        return ANY, ""
    inner = p[1:-1] if len(p) >= 2 and p.startswith("*") and p.endswith("*") else None
    if inner is not None and "*" not in inner:
        return CONTAINS, inner
    if p.startswith("*") and "*" not in p[1:]:
        return ENDS, p[1:]
    if p.endswith("*") and "*" not in p[:-1]:
        return STARTS, p[:-1]
    if "*" not in p:
        return EXACT, p
    return GLOB, p


class PatternSet:
    """A compiled list of patterns; `match(text)` returns the first pattern that hits, or ""."""

    def __init__(self, patterns: Sequence[str], ignore_case: bool = True) -> None:
        self.patterns = [p.strip() for p in patterns if p.strip()]
        self.ignore_case = ignore_case
        self._rules: List[Tuple[str, str, object, str]] = []
        for p in self.patterns:
            mode, text = classify(p)
            if ignore_case:
                text = text.lower()
            compiled: object = None
            if mode == GLOB:
                rx = ".*".join(re.escape(part) for part in text.split("*"))
                compiled = re.compile(rx, re.DOTALL)
            self._rules.append((mode, text, compiled, p))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def match(self, text: str) -> str:
        if self.ignore_case:
            text = text.lower()
        for mode, value, compiled, original in self._rules:
            if mode == ENDS:
                hit = text.endswith(value)
            elif mode == STARTS:
                hit = text.startswith(value)
            elif mode == CONTAINS:
                hit = value in text
            elif mode == EXACT:
                hit = text == value
            elif mode == ANY:
                hit = True
            else:
                hit = compiled.fullmatch(text) is not None  # type: ignore[attr-defined]
            if hit:
                return original
        return ""

    def match_any(self, texts: Sequence[str]) -> str:
        for text in texts:
            hit = self.match(text)
            if hit:
                return hit
        return ""


_CTL = re.compile(r"[\x00-\x1f\x7f]")


def split_target(target: str) -> str:
    """The path of a request-target: query string and fragment stripped, absolute-form reduced."""
    if target.startswith(("http://", "https://")) or target[:8].lower().startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    for sep in ("?", "#"):
        cut = target.find(sep)
        if cut >= 0:
            target = target[:cut]
    return target


def _decode(path: str) -> str:
    return unquote_to_bytes(path).decode("utf-8", "surrogateescape")


def _resolve_dots(path: str) -> str:
    """RFC 3986 remove_dot_segments plus slash collapsing; raises BadPath when climbing above root."""
    out: List[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        if seg in ("", "."):
            if i == len(segments) - 1 and out:
                out.append("")  # keep a trailing slash
            continue
        if seg == "..":
            if not out or out == [""]:
                raise BadPath(f"path {path!r} climbs above the root")
            out.pop()
            if out and out[-1] == "":
                out.pop()
            if i == len(segments) - 1:
                out.append("")
            continue
        if out and out[-1] == "":
            out.pop()
        out.append(seg)
    return "/" + "/".join(out)


def path_candidates(target: str) -> List[str]:
    """Every spelling of the request's path a ban must consider (see the module doc)."""
    raw = split_target(target)
    if not raw.startswith("/"):
        raw = "/" + raw if raw != "*" else "*"
    if raw == "*":
        return ["*"]
    forms: List[str] = [raw]
    once = _decode(raw)
    forms.append(once)
    current = once
    for _ in range(3):  # decode until stable, bounded (%25252e...)
        nxt = _decode(current)
        if nxt == current:
            break
        forms.append(nxt)
        current = nxt
    seen: Set[str] = set()
    out: List[str] = []
    for form in forms:
        if _CTL.search(form):
            raise BadPath(f"path {raw!r} decodes to a control character")
        variants = [form, form.replace("\\", "/")]
        for v in variants:
            norm = _resolve_dots(v)
            extra = [norm, re.sub(r";[^/]*", "", norm)]
            for e in list(extra):
                if len(e) > 1 and e.endswith("/"):
                    extra.append(e.rstrip("/") or "/")
            for e in extra:
                if e not in seen:
                    seen.add(e)
                    out.append(e)
    return out


def normalized_path(target: str) -> str:
    """The canonical form (decoded once, dots resolved, slashes collapsed): what logs show."""
    return path_candidates(target)[0] if target == "*" else _resolve_dots(_decode(split_target(target) or "/"))
