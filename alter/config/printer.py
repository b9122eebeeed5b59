"""Canonical configs -> apm.conf text a human would write, and atomic file writes.

Output rules: options in the option table's order, 4-space indent, values
aligned per block, quotes only when a value would not read back the same
without them (always double quotes, with \\" \\\\ \\n \\t \\r \\uXXXX escapes),
list values comma-separated (`params` and `env`: space-separated words), a
blank line before each sub-block, and the comments a WorkerDef carries
(above the block, above an option, after an option's `;`).

`load_text(format_workers(defs))` gives back the same configs (a property test
checks it).
"""

from __future__ import annotations

import os
import stat
import unicodedata
from typing import Any, Dict, List, Optional, Sequence, Union

from alter.atomic import replace_file
from alter.config import options
from alter.config.loader import WorkerDef
from alter.errors import ConfigError

INDENT = "    "
_SPACE = " \t\r\n\f\v\ufeff"
_SPECIAL = set(";{}\"'`") | set(_SPACE)
_ESCAPE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_NO_SPLIT = ("params", "env")  # list options whose items keep commas (see loader)

WorkerLike = Union[WorkerDef, Dict[str, Any]]


def quote(text: str) -> str:
    """Double-quote `text` with the escapes the lexer understands."""
    out = []
    for ch in text:
        if ch in _ESCAPE:
            out.append(_ESCAPE[ch])
        elif ch != " " and _unprintable(ch):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _unprintable(ch: str) -> bool:
    return ch in _SPACE or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def _safe_word(word: str) -> bool:
    """Would this word read back unchanged without quotes?"""
    if not word or word.startswith(("#", "//")):
        return False
    return not any(ch in _SPECIAL or _unprintable(ch) for ch in word)


def render_word(word: str, list_item: bool = False) -> str:
    """One list item: quoted unless it is a plain word."""
    if _safe_word(word) and not (list_item and word.endswith(",")) and word != ":":
        return word
    return quote(word)


def render_text(text: str) -> str:
    """A single-valued option: words joined by single spaces need no quotes."""
    words = text.split(" ")
    if all(_safe_word(w) for w in words) and words[0] != ":":
        return text
    return quote(text)


def render_value(option: options.Option, value: Any) -> str:
    items = options.format_value(option, value)
    if option.multiple:
        if option.name in _NO_SPLIT:
            return " ".join(render_word(i, list_item=True) for i in items)
        return ", ".join(render_word(i, list_item=True) for i in items)
    return render_text(items[0])


def _has_value(value: Any) -> bool:
    return value is not None and value != [] and value != {}


class _Writer:
    def __init__(self, notes: Optional[WorkerDef]) -> None:
        self.lines: List[str] = []
        self.notes = notes

    def comments_above(self, path: str, indent: str) -> None:
        if self.notes is None:
            return
        for text in self.notes.key_comments.get(path, []):
            self.lines.append(f"{indent}# {text}".rstrip())

    def trail(self, path: str) -> str:
        text = self.notes.trail_comments.get(path, "") if self.notes is not None else ""
        return f"  # {text}".rstrip() if text else ""

    def block(self, kind: str, values: Dict[str, Any], depth: int, path: str) -> None:
        table = options.BLOCKS[kind]
        indent = INDENT * depth
        keys = [
            name for name, opt in table.items() if opt.kind is not options.Kind.BLOCK and _has_value(values.get(name))
        ]
        width = max((len(k) for k in keys), default=0) + 2
        for name in keys:
            self.comments_above(path + name, indent)
            value = render_value(table[name], values[name])
            self.lines.append(f"{indent}{name.ljust(width)}{value};{self.trail(path + name)}")
        for name, opt in table.items():
            if opt.kind is not options.Kind.BLOCK or values.get(name) in (None, []):
                continue
            subs = values[name] if opt.repeat_block else [values[name]]
            for index, sub in enumerate(subs):
                sub_path = f"{path}{name}.{index}" if opt.repeat_block else f"{path}{name}"
                if self.lines and not (opt.repeat_block and index):
                    self.lines.append("")
                self.comments_above(sub_path, indent)
                self.lines.append(f"{indent}{name} {{{self.trail(sub_path)}")
                self.block(opt.block, sub, depth + 1, sub_path + ".")
                self.lines.append(f"{indent}}}")


def format_block(kind: str, name: str, values: Dict[str, Any], notes: Optional[WorkerDef] = None) -> List[str]:
    """`name { ... }` lines for one block of the given option-table kind."""
    writer = _Writer(notes)
    if notes is not None:
        writer.lines.extend(f"# {c}".rstrip() for c in notes.comments)
    writer.lines.append(f"{name} {{")
    body = _Writer(notes)
    body.block(kind, values, 1, "")
    writer.lines.extend(body.lines)
    writer.lines.append("}")
    return writer.lines


def format_workers(
    defs: Sequence[WorkerLike],
    daemon: Optional[Dict[str, Any]] = None,
    header: Union[str, Sequence[str], None] = None,
    top: Optional[Dict[str, Any]] = None,
) -> str:
    """apm.conf text for `defs` (WorkerDefs or plain config dicts), daemon and top-level settings."""
    chunks: List[List[str]] = []
    if header:
        lines = header.splitlines() if isinstance(header, str) else list(header)
        chunks.append([line if line.startswith("#") else f"# {line}".rstrip() for line in lines])
    if daemon:
        chunks.append(format_block("daemon", "daemon", daemon))
    if top:
        width = max(len(k) for k in top) + 2
        chunks.append(
            [
                f"{key.ljust(width)}{render_value(options.TOP_LEVEL_OPTIONS[key], value)};"
                for key, value in top.items()
                if key in options.TOP_LEVEL_OPTIONS and _has_value(value)
            ]
        )
    for item in defs:
        notes = item if isinstance(item, WorkerDef) else None
        config = item.config if isinstance(item, WorkerDef) else item
        chunks.append(format_block("worker", "worker", config, notes))
    return "\n\n".join("\n".join(chunk) for chunk in chunks if chunk) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Replace `path` with `text` atomically (alter.atomic).

    Keeps an existing file's mode (and owner, when running as root); writes
    through a symlink to its target.  New files get mode 0644.
    """
    mode, owner = 0o644, None
    try:
        st = os.stat(path)
        mode = stat.S_IMODE(st.st_mode)
        owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", hint="check the path and its permissions") from None
    try:
        replace_file(path, text, mode, owner)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror}",
            hint=f"check that {os.path.dirname(os.path.realpath(path)) or '.'} exists, is writable and has space",
        ) from None
