"""`apm saveconf`: write workers back to apm.conf files, atomically, the way a person writes them.

    save_all(reloader, caller)              # every file-origin worker back to its own file
    save_one(reloader, "api", path, caller)  # one worker into `path`; that file becomes its origin

The rule for rewriting a file (docs/config.md, "Saving workers"):

* Only files made of `worker { }` blocks and comments are rewritten.  A file
  that also holds a `daemon { }` block, `include`s or top-level settings is
  left alone (saveconf would have to reproduce them) and reported as refused.
* Every worker block in the file must belong to a worker the daemon knows
  from that file (or the one being saved): saveconf never drops a block the
  daemon has not loaded.  A file with syntax errors is never overwritten.
* Output comes from `printer.format_workers`: option-table order, aligned
  values, the comments of each block (read again from the file when it still
  has the block, else the ones kept in the worker's origin since loading),
  comments that belonged to no option above their worker block, the file's
  header comments first.  `path` is left out when loading would fill in the
  same directory anyway.
* The text is checked by loading it back (same workers, same configs) before
  `write_atomic` replaces the file.  A new file written for a non-root caller
  by a root daemon belongs to that caller.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from alter.config import options
from alter.config.lexer import decode
from alter.config.loader import WorkerDef, load_text
from alter.config.parser import Statement, parse
from alter.config.printer import format_workers, write_atomic
from alter.daemon.config_access import Caller, may_access, may_write
from alter.daemon.reloader import Reloader, origin_root
from alter.errors import ApmError, Conflict, PermissionDenied, UsageError


def _has_include(statements: List[Statement]) -> bool:
    for stmt in statements:
        if options.normalize_name(stmt.key) == "include":
            return True
        if stmt.block is not None and _has_include(stmt.block):
            return True
    return False


class _Existing:
    """What the file holds now: its workers (with fresh comments) and the comments around them."""

    def __init__(self) -> None:
        self.workers: Dict[str, WorkerDef] = {}
        self.header: List[str] = []
        self.footer: List[str] = []
        self.above: Dict[str, List[str]] = {}  # worker name -> orphan comments to put above its block


def _read_existing(path: str, caller: Caller) -> _Existing:
    found = _Existing()
    if not os.path.exists(path):
        return found
    if not may_access(path, caller):
        raise PermissionDenied(f"user {caller.username} may not read {path}", hint="save to a file you can read")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ApmError(f"cannot read {path}: {exc.strerror}", hint="check the path and its permissions") from None
    text, problems = decode(data)
    parsed = parse(text, undecodable=bool(problems))
    if problems or parsed.errors:
        raise Conflict(
            f"{path} has syntax errors; saveconf does not overwrite it",
            hint=f"fix it first (apm check {path}), or save to another file",
        )
    other = sorted({s.key for s in parsed.statements if options.normalize_name(s.key) != "worker"})
    if other or _has_include(parsed.statements):
        what = ", ".join(other) if other else "include"
        raise Conflict(
            f"{path} holds more than worker blocks ({what}); saveconf rewrites only files made of worker blocks",
            hint="keep daemon settings and includes in apm.conf, and workers in their own files "
            "(apm saveconf <name> <file> moves one)",
        )
    result = load_text(text, path)
    if result.errors:
        raise Conflict(
            f"{path} has errors ({result.errors[0].message}); saveconf does not overwrite it",
            hint=f"fix it first (apm check {path}), or save to another file",
        )
    blocks = parsed.statements  # each a worker block, in file order, matching result.workers
    names = [wd.name for wd in result.workers]
    found.workers = {wd.name: wd for wd in result.workers}
    for comment in parsed.orphans:
        owner = next((n for s, n in zip(blocks, names) if comment.line <= s.end_line), None)
        if blocks and comment.line < blocks[0].line:
            found.header.append(comment.text)
        elif owner is None:
            found.footer.append(comment.text)
        else:
            found.above.setdefault(owner, []).append(comment.text)
    return found


def _notes_of(origin: Dict[str, Any]) -> Dict[str, Any]:
    notes = origin.get("notes")
    return notes if isinstance(notes, dict) else {}


def _file_config(worker: Any, path: str) -> Dict[str, Any]:
    """The worker's config as the file should say it (an implicit `path` that loading restores is left out)."""
    config = dict(worker.config)
    origin = worker.origin if isinstance(worker.origin, dict) else {}
    if "path" in (origin.get("implicit") or []) and config.get("path") == os.path.dirname(path):
        config.pop("path", None)
    return config


def _root_for(reloader: Reloader, path: str, worker: Any) -> str:
    if isinstance(worker.origin, dict) and worker.origin.get("file") == path and origin_root(worker.origin):
        return str(origin_root(worker.origin))
    for other in reloader.sup.workers.values():
        if other is not worker and other.origin.get("file") == path and origin_root(other.origin):
            return str(origin_root(other.origin))
    for root, plan in reloader.known.items():
        if path in plan.files:
            return root
    return path


def write_workers(reloader: Reloader, path: str, names: List[str], caller: Caller) -> List[str]:
    """Rewrite `path` with the workers `names` (see the module doc for when it refuses)."""
    sup = reloader.sup
    path = os.path.abspath(path)
    if path.lower().endswith((".json", ".js", ".cjs", ".mjs")):
        raise UsageError(
            f"{path}: saveconf writes apm.conf syntax, not an ecosystem file",
            hint="save to a .conf file: apm saveconf <name> <file.conf>",
        )
    if not may_write(path, caller):
        raise PermissionDenied(f"user {caller.username} may not write {path}", hint="save to a file you can write")
    if not os.path.isdir(os.path.dirname(path)):
        raise UsageError(f"cannot write {path}: {os.path.dirname(path)} is not a directory", hint="create it first")
    existing = _read_existing(path, caller)
    unknown = [n for n in existing.workers if n not in names]
    if unknown:
        raise Conflict(
            f"{path} also defines {', '.join(unknown)}, which the daemon did not load from it; "
            "saveconf would drop them",
            hint=f"apm load {path} first, or remove those blocks by hand",
        )
    workers = [sup.get(n) for n in names]
    order = [n for n in existing.workers if n in names]
    rest = [w for w in workers if w.name not in existing.workers]
    rest.sort(key=lambda w: (w.origin.get("file") != path, w.origin.get("line") or 0))
    order += [w.name for w in rest]
    defs: List[WorkerDef] = []
    wanted: Dict[str, Dict[str, Any]] = {}
    for name in order:
        worker = sup.workers[name]
        config = _file_config(worker, path)
        wanted[name] = config
        fresh = existing.workers.get(name)
        notes = _notes_of(worker.origin)
        if fresh is not None:
            lead, keys, trail = list(fresh.comments), fresh.key_comments, fresh.trail_comments
        else:
            lead, keys, trail = list(notes.get("comments") or []), notes.get("keys") or {}, notes.get("trail") or {}
        lead = existing.above.get(name, []) + lead
        defs.append(WorkerDef(config, {}, lead, dict(keys), dict(trail)))
    text = format_workers(defs, header=existing.header or None)
    if existing.footer:
        text += "\n" + "".join(f"# {c}".rstrip() + "\n" for c in existing.footer)
    back = load_text(text, path)
    if back.errors or back.configs() != wanted:
        raise ApmError(
            f"saveconf: the text for {path} would not load back the same workers; nothing written",
            hint="please report this with the output of `apm info` for these workers",
        )
    is_new = not os.path.exists(path)
    write_atomic(path, text)
    if is_new and not caller.trusted and os.geteuid() == 0:
        try:
            os.chown(path, caller.uid, caller.gid if caller.gid >= 0 else -1)
        except OSError:
            pass
    for wd in back.workers:
        worker = sup.workers[wd.name]
        origin: Dict[str, Any] = {
            "kind": "file",
            "file": path,
            "line": wd.origin.get("line"),
            "root": _root_for(reloader, path, worker),
        }
        if "path" not in wd.config:
            origin["implicit"] = ["path"]
        if not caller.trusted:
            origin["owner"] = caller.uid
        elif isinstance(worker.origin.get("owner"), int) and worker.origin.get("file") == path:
            origin["owner"] = worker.origin["owner"]
        notes = {"comments": wd.comments, "keys": wd.key_comments, "trail": wd.trail_comments}
        notes = {k: v for k, v in notes.items() if v}
        if notes:
            origin["notes"] = notes
        sup.set_origin(wd.name, origin)
    reloader.files_changed()
    return order


def save_all(reloader: Reloader, caller: Caller) -> Dict[str, Any]:
    """Every file-origin worker back to its file; other workers are listed as unsaved."""
    by_file: Dict[str, List[str]] = {}
    unsaved: List[Dict[str, Any]] = []
    for worker in reloader.sup.workers.values():
        if worker.removing:
            continue
        origin = worker.origin if isinstance(worker.origin, dict) else {}
        if origin.get("kind") == "file" and origin.get("file"):
            by_file.setdefault(str(origin["file"]), []).append(worker.name)
        else:
            unsaved.append({"name": worker.name, "origin": origin.get("kind"), "path": worker.config.get("path")})
    saved: List[Dict[str, Any]] = []
    refused: List[Dict[str, Any]] = []
    for path, names in sorted(by_file.items()):
        try:
            written = write_workers(reloader, path, names, caller)
        except ApmError as exc:
            refused.append({"file": path, "workers": names, "reason": exc.message, "hint": exc.hint})
            continue
        saved.append({"file": path, "workers": written})
    return {"saved": saved, "refused": refused, "unsaved": unsaved}


def save_one(reloader: Reloader, name: str, path: str, caller: Caller) -> Dict[str, Any]:
    """Save worker `name` into `path` (with the workers already loaded from it); it becomes the origin."""
    worker = reloader.sup.get(name)
    path = os.path.abspath(path)
    names = [
        w.name
        for w in reloader.sup.workers.values()
        if not w.removing and w.name != worker.name and w.origin.get("file") == path
    ]
    old: Optional[str] = worker.origin.get("file") if worker.origin.get("kind") == "file" else None
    written = write_workers(reloader, path, names + [worker.name], caller)
    result: Dict[str, Any] = {"saved": [{"file": path, "workers": written}], "worker": worker.name}
    if old and old != path:
        result["previous"] = old
    return result
