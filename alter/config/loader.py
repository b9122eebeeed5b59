"""Load apm.conf files: parse, expand includes, validate against the option table.

    result = load_file("/etc/apm/apm.conf")
    result.errors      # every problem found, each a ConfigError with file:line:col
    result.warnings    # unknown options, repeated keys... (loading went on)
    result.workers     # WorkerDef per valid worker block (bad fields dropped)

How values are read (option kinds come from alter.config.options):

* Single-valued options: the words after the key are joined with one space,
  so `name My API;`, `cmd node server.js;` and `schedule 0 2 * * *;` need no
  quotes.  Commas are literal (`restart_cron 0,30 * * * *;`).
* List options: every word is an item; commas split items too
  (`server http://:80, ws://:81;`).  `params` and `env` keep commas inside a
  word (`--ids=1,2`, `KEY=a,b`); there only a word-final comma separates.
* A single-valued key given twice: the last value wins, with a warning naming
  both places.  A list key given twice accumulates; an item listed twice is
  kept once, with a warning (except `params`/`env`, which keep every word).
  A sub-block given twice (`vanguard { } ... vanguard { }`) is merged;
  `module` blocks repeat.
* `include <glob>;` works in any block, relative to the including file's
  directory (`~` expands), expanded in sorted order.  A glob matching nothing
  is fine (empty drop-in directory); a plain path that does not exist is an
  error, and so is an include cycle.
* `worker <name> { }` sets the name.  An unset `path` means the directory of the
  file in `origin` (the daemon resolves it).

Nothing here raises on bad input: errors are collected so `apm check` shows
them all.  A worker with a bad optional field is kept without that field; a
worker that lacks `exec` or repeats another worker's name is dropped.
"""

from __future__ import annotations

import glob
import os
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple, Union, cast

from alter.config import options
from alter.config.lexer import Token, decode
from alter.config.parser import Statement, parse
from alter.errors import ConfigError

MAX_INCLUDE_DEPTH = 32
_KEEP_REPEATS = ("params", "env")  # list options whose items are positional words, never deduplicated
_TOP_KEYS = ("worker", "daemon", "include", *options.TOP_LEVEL_OPTIONS)


@dataclass
class WorkerDef:
    """One worker block: canonical config plus where it came from."""

    config: Dict[str, Any]
    origin: Dict[str, Any]  # {"file": absolute path or "<string>", "line": n}
    comments: List[str] = field(default_factory=list)  # comment lines right above the block
    key_comments: Dict[str, List[str]] = field(default_factory=dict)  # "vanguard.rate_limit" -> lines above
    trail_comments: Dict[str, str] = field(default_factory=dict)  # "instances" -> comment after the `;`

    @property
    def name(self) -> str:
        return str(self.config["name"])


@dataclass
class LoadResult:
    workers: List[WorkerDef] = field(default_factory=list)
    daemon: Dict[str, Any] = field(default_factory=dict)
    top: Dict[str, Any] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)  # every file read (absolute), includes too
    dirs: List[str] = field(default_factory=list)  # directories of glob includes (new files may appear)
    errors: List[ConfigError] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def configs(self) -> Dict[str, Dict[str, Any]]:
        """name -> config, the shape `diff.plan` takes."""
        return {w.name: w.config for w in self.workers}

    def raise_if_errors(self) -> None:
        """Raise the error (or one ConfigError listing all of them)."""
        if not self.errors:
            return
        if len(self.errors) == 1:
            raise self.errors[0]
        lines = [f"{len(self.errors)} errors in config:"]
        for err in self.errors:
            lines.append("  " + err.message + (f"\n    hint: {err.hint}" if err.hint else ""))
        combined = ConfigError("\n".join(lines), hint="fix them, then run `apm check` again")
        combined.where = self.errors[0].where
        raise combined


def load_file(path: str) -> LoadResult:
    """Load a config file and everything it includes."""
    loader = _Loader()
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        loader.result.errors.append(
            ConfigError(
                f"cannot read config file {path}: {exc.strerror or exc}",
                hint="check the path and its permissions",
                where=path,
            )
        )
        return loader.result
    loader.result.files.append(os.path.abspath(path))
    return loader.run(data, path, os.path.abspath(path), [os.path.realpath(path)])


def load_bytes(data: bytes, filename: str = "<bytes>") -> LoadResult:
    """Like load_text, for raw file content (bad UTF-8 and NUL bytes become errors)."""
    return _load_source(data, filename)


def load_text(text: str, filename: str = "<string>") -> LoadResult:
    """Load config text; `filename` names it in messages and anchors relative includes."""
    return _load_source(text, filename)


def _load_source(data: Union[str, bytes], filename: str) -> LoadResult:
    loader = _Loader()
    real = os.path.realpath(filename) if not filename.startswith("<") else filename
    origin = os.path.abspath(filename) if not filename.startswith("<") else filename
    return loader.run(data, filename, origin, [real])


def where_of(stmt: Statement, tok: Optional[Token] = None) -> str:
    line, col = (tok.line, tok.col) if tok is not None else (stmt.line, stmt.col)
    return f"{stmt.file}:{line}:{col}"


class _Loader:
    def __init__(self) -> None:
        self.result = LoadResult()
        self.origins: Dict[str, str] = {}  # display name -> absolute path

    # ------------------------------------------------------------------ reading

    def error(self, message: str, hint: str, where: str) -> None:
        self.result.errors.append(ConfigError(message, hint=hint, where=where))

    def warn(self, message: str, where: str) -> None:
        self.result.warnings.append(f"{where}: {message}")

    def parse_source(self, data: Any, display: str) -> List[Statement]:
        if isinstance(data, bytes):
            text, problems = decode(data)
        else:
            text, problems = data, []
        parsed = parse(text, undecodable=bool(problems))
        for p in sorted(problems + parsed.errors, key=lambda e: (e.line, e.col)):
            self.error(p.message, p.hint, f"{display}:{p.line}:{p.col}")
        return parsed.statements

    def run(self, data: Any, display: str, origin: str, chain: List[str]) -> LoadResult:
        self.origins[display] = origin
        statements = self.expand(self.parse_source(data, display), display, chain)
        self.interpret_top(statements)
        self.result.errors.sort(key=_error_order(self.result.files))
        return self.result

    def expand(self, statements: List[Statement], display: str, chain: List[str]) -> List[Statement]:
        """Tag statements with their file and splice includes in, recursively."""
        out: List[Statement] = []
        for stmt in statements:
            stmt.file = display
            if options.normalize_name(stmt.key) == "include":
                out.extend(self.include(stmt, display, chain))
                continue
            if stmt.block is not None:
                stmt.block = self.expand(stmt.block, display, chain)
            out.append(stmt)
        return out

    def include(self, stmt: Statement, display: str, chain: List[str]) -> List[Statement]:
        where = where_of(stmt)
        if stmt.block is not None or not stmt.words:
            self.error("include needs a file path or glob", "write `include apm.conf.d/*.conf;`", where)
            return []
        pattern = os.path.expanduser(" ".join(w.text for w in stmt.words))
        base = "" if display.startswith("<") else os.path.dirname(display)
        path = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        if glob.has_magic(pattern):
            folder = os.path.dirname(path)
            if not glob.has_magic(folder):
                self.add_unique(self.result.dirs, os.path.abspath(folder or "."))
            matches = sorted(p for p in glob.glob(path) if not os.path.isdir(p))
        elif os.path.isdir(path):
            self.error(
                f"include {pattern}: is a directory",
                f"include the files in it: `include {pattern.rstrip('/')}/*.conf;`",
                where,
            )
            return []
        elif not os.path.exists(path):
            self.error(
                f"include {pattern}: no such file ({path})",
                f"check the path; relative includes start at the including file's directory ({base or '.'})",
                where,
            )
            return []
        else:
            matches = [path]
        out: List[Statement] = []
        for match in matches:
            out.extend(self.include_one(stmt, match, chain))
        return out

    def include_one(self, stmt: Statement, path: str, chain: List[str]) -> List[Statement]:
        where = where_of(stmt)
        real = os.path.realpath(path)
        if real in chain:
            names = [os.path.basename(p) for p in chain[chain.index(real) :]] + [os.path.basename(real)]
            self.error(
                "circular include: " + " -> ".join(names),
                "remove the include that points back (a glob may match the including file itself)",
                where,
            )
            return []
        if len(chain) >= MAX_INCLUDE_DEPTH:
            self.error(f"includes nested deeper than {MAX_INCLUDE_DEPTH} files", "flatten the include chain", where)
            return []
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            self.error(f"include {path}: cannot read it: {exc.strerror or exc}", "check its permissions", where)
            return []
        self.add_unique(self.result.files, os.path.abspath(path))
        self.origins[path] = os.path.abspath(path)
        return self.expand(self.parse_source(data, path), path, chain + [real])

    @staticmethod
    def add_unique(items: List[str], item: str) -> None:
        if item not in items:
            items.append(item)

    # ------------------------------------------------------------------ meaning

    def interpret_top(self, statements: List[Statement]) -> None:
        daemon_statements: List[Statement] = []
        daemon_where = ""
        names: Dict[str, str] = {}
        top_seen: Dict[str, str] = {}
        for stmt in statements:
            key = options.normalize_name(stmt.key)
            where = where_of(stmt)
            if key == "worker":
                self.worker(stmt, names)
            elif key == "daemon":
                if stmt.block is None:
                    self.error("daemon is a block", "write `daemon { gui_port 6789; }`", where)
                    continue
                if stmt.words:
                    self.error("daemon takes no name", "write `daemon { ... }`", where_of(stmt, stmt.words[0]))
                daemon_statements.extend(stmt.block)
                daemon_where = daemon_where or where
            elif key in options.TOP_LEVEL_OPTIONS:
                option = options.TOP_LEVEL_OPTIONS[key]
                value = self.value(stmt, option, "top-level")
                if value is not _BAD:
                    self.set_single(self.result.top, top_seen, option.name, value, stmt)
            elif key in options.DAEMON_OPTIONS or key in options.WORKER_OPTIONS:
                home = "daemon" if key in options.DAEMON_OPTIONS else "worker"
                self.warn(f"{key} outside a {home} block is ignored (move it into `{home} {{ ... }}`)", where)
            else:
                self.warn(
                    f"unknown top-level key {stmt.key!r} ignored ({options.suggest(key, cast(Dict[str, options.Option], dict.fromkeys(_TOP_KEYS)))})",
                    where,
                )
        if daemon_statements:
            self.result.daemon = self.block("daemon", daemon_statements, daemon_where) or {}

    def worker(self, stmt: Statement, names: Dict[str, str]) -> None:
        where = where_of(stmt)
        if stmt.block is None:
            self.error("worker is a block", "write `worker { exec ...; }` or `worker <name> { ... }`", where)
            return
        prelude: List[Statement] = []
        if len(stmt.words) > 1:
            self.error(
                "worker takes at most one name before `{`",
                "worker names have no spaces: `worker my-api {`",
                where_of(stmt, stmt.words[1]),
            )
        elif stmt.words:
            word = stmt.words[0]
            prelude.append(Statement("name", word.line, word.col, [word], file=stmt.file))
        notes = WorkerDef({}, {}, list(stmt.lead_comments))
        config = self.block("worker", prelude + stmt.block, where, notes)
        if config is None:
            return
        name = str(config["name"])
        if name in names:
            self.error(
                f"duplicate worker name {name!r} (first defined at {names[name]})",
                "give each worker a unique `name` (workers without one are named after exec)",
                where,
            )
            return
        names[name] = where
        notes.config = config
        notes.origin = {"file": self.origins.get(stmt.file, stmt.file), "line": stmt.line}
        self.result.workers.append(notes)

    def block(
        self, kind: str, statements: List[Statement], where: str, notes: Optional[WorkerDef] = None, path: str = ""
    ) -> Optional[Dict[str, Any]]:
        """Read one block's statements into a clean dict (None when it is unusable)."""
        table = options.BLOCKS[kind]
        raw: Dict[str, Any] = {}
        seen: Dict[str, str] = {}
        merged: Dict[str, Tuple[str, List[Statement]]] = {}
        repeated: Dict[str, List[Dict[str, Any]]] = {}
        counts: Dict[str, int] = {}
        failed: Set[str] = set()  # options whose value was bad (already reported)
        for stmt in statements:
            name = options.normalize_name(stmt.key)
            option = table.get(name)
            swhere = where_of(stmt)
            if option is None:
                self.warn(f"unknown {kind} option {stmt.key!r} ignored ({options.suggest(name, table)})", swhere)
                continue
            if notes is not None and not option.repeat_block:
                self.keep_comments(notes, path + name, stmt)
            if option.kind is options.Kind.BLOCK:
                if stmt.block is None:
                    self.error(f"{name} is a block, not a value", f"write `{name} {{ ... }}`", swhere)
                    continue
                if stmt.words:
                    self.error(
                        f"{name} takes no name before `{{`", f"write `{name} {{ ... }}`", where_of(stmt, stmt.words[0])
                    )
                if option.repeat_block:
                    index = counts[name] = counts.get(name, -1) + 1
                    repeated.setdefault(name, [])
                    if notes is not None:
                        self.keep_comments(notes, f"{path}{name}.{index}", stmt)
                    sub = self.block(option.block, stmt.block, swhere, notes, f"{path}{name}.{index}.")
                    if sub is not None:
                        repeated[name].append(sub)
                else:
                    merged.setdefault(name, (swhere, []))[1].extend(stmt.block)
                continue
            value = self.value(stmt, option, kind)
            if value is _BAD:
                failed.add("exec" if name == "cmd" else name)
                continue
            if option.multiple:
                bucket = raw.setdefault(name, [])
                for item in value:
                    if item in bucket and name not in _KEEP_REPEATS:
                        self.warn(f"{name} {item} is listed twice; the repeat is ignored", swhere)
                        continue
                    bucket.append(item)
            else:
                self.set_single(raw, seen, name, value, stmt)
        for name, (swhere, stmts) in merged.items():
            sub = self.block(table[name].block, stmts, swhere, notes, f"{path}{name}.")
            if sub is not None:
                raw[name] = sub
        raw.update(repeated)
        if kind == "worker" and "cmd" in raw and ("exec" in raw or "params" in raw):
            self.warn("cmd is ignored where exec/params are also set (they win)", where)
        try:
            clean, warnings = options.coerce_block(kind, raw, where)
        except ConfigError as exc:
            if not any(table[name].required for name in failed):  # else the bad value was the cause
                self.result.errors.append(exc)
            return None
        self.result.warnings.extend(warnings)
        return {k: v for k, v in clean.items() if v != []}  # `cmd node;` leaves params []: unset

    def value(self, stmt: Statement, option: options.Option, kind: str) -> Any:
        """Coerce one `key value;` statement; returns _BAD after recording the error."""
        where = where_of(stmt)
        if stmt.block is not None:
            self.error(
                f"{option.name} takes a value, not a block", f"write `{option.name} <value>;` ({option.help})", where
            )
            return _BAD
        if any(w.broken for w in stmt.words):
            return _BAD  # the lexer reported it
        if not stmt.words:
            self.error(
                f"{option.name} needs a value", f"write `{option.name} <value>;`: {option.describe_type()}", where
            )
            return _BAD
        if not option.multiple:
            words = [w.text for w in stmt.words]
            if option.name == "cmd" and len(stmt.words) > 1:  # keep `cmd node "a b.js";` one argument
                words = [shlex.quote(w.text) if w.quoted else w.text for w in stmt.words]
            text = " ".join(words)
            return self.coerce(option, text, kind, where_of(stmt, stmt.words[0]))
        items: List[Any] = []
        keep_commas = option.name in _KEEP_REPEATS
        for word in stmt.words:
            text = word.text
            if keep_commas and not word.quoted:
                text = text[:-1] if text.endswith(",") else text
                if not text:
                    continue
            value = self.coerce(option, [text], kind, where_of(stmt, word))
            if value is _BAD:
                return _BAD
            items.extend(value)
        return items

    def coerce(self, option: options.Option, raw: Any, kind: str, where: str) -> Any:
        try:
            return options.coerce(option, raw)
        except ValueError as exc:
            self.error(
                f"{kind} option {option.name}: {exc}",
                f"{option.name} takes {option.describe_type()}: {option.help}",
                where,
            )
            return _BAD

    def set_single(self, raw: Dict[str, Any], seen: Dict[str, str], name: str, value: Any, stmt: Statement) -> None:
        where = where_of(stmt)
        if name in seen:
            self.warn(f"{name} is set again (first at {seen[name]}); the last value wins", where)
        raw[name] = value
        seen[name] = where

    @staticmethod
    def keep_comments(notes: WorkerDef, key: str, stmt: Statement) -> None:
        if stmt.lead_comments:
            notes.key_comments.setdefault(key, []).extend(stmt.lead_comments)
        if stmt.trail_comment:
            notes.trail_comments[key] = stmt.trail_comment


class _Bad:
    def __repr__(self) -> str:
        return "<bad value>"


_BAD: Any = _Bad()


def _error_order(files: List[str]) -> Any:
    """Sort errors by file (in reading order), then line, then column."""

    def key(err: ConfigError) -> Tuple[int, str, int, int]:
        file, line, col = _split_where(err.where)
        rank = files.index(os.path.abspath(file)) if os.path.abspath(file) in files else -1
        return (rank, file, line, col)

    return key


def _split_where(where: str) -> Tuple[str, int, int]:
    parts = where.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return where, 0, 0
