"""`apm grep`: search worker logs (docs/logs.md, "apm grep"; docs/protocol.md, "grep").

Imported only when `apm grep` runs (logcmds.py wraps it).  The daemon validates the request and
decides what to search: the CLI first asks for the plan (`grep` with `plan: true`: the files of
each worker oldest first, the effective --max and --context, the workers' line heads), and when
it can read every one of those files it searches them itself with alter/grepcore.py — no second
process, no socket hop, no JSON per match: output is written in big blocks.  When a file is not
readable by the caller (a user in the `apm` group, root-owned logs) the daemon searches instead
and streams the same text (`format: "text"`).  Authorization is the daemon's either way: the plan
is a write-rights command like `grep` itself, and the CLI reads files with its own permissions.
"""

from __future__ import annotations

import os
import time

from alter.cli.context import Ctx
from alter.cli.flags import Parsed
from alter.cli.logview import whole_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional


def _args(ctx: Ctx, p: Parsed) -> Dict[str, Any]:
    pattern = p.positionals[0]
    args: Dict[str, Any] = {
        "pattern": pattern,
        "ignore_case": bool(p.flag("ignore_case")),
        "raw": bool(p.flag("raw")),
        "color": ctx.style.enabled and not ctx.json,
    }
    if len(p.positionals) > 1:
        args["name"] = p.positionals[1]
    if p.flag("context") is not None:
        args["context"] = whole_number(p.flag("context"), "-C", 0, 100, "lines of context around each match")
    if p.flag("max") is not None:
        args["max"] = whole_number(p.flag("max"), "--max", 0, 1_000_000, "stop after N matches (0: no limit)")
    return args


def _readable(plan: Dict[str, Any]) -> bool:
    """Can this process read every listed file?  (A file rotated away meanwhile does not count.)"""
    for _worker, files, _heads in plan.get("files") or []:
        for path in files:
            if not os.access(path, os.R_OK) and os.path.exists(path):
                return False
    return True


def _out_writer(ctx: Ctx) -> Any:
    """A function writing bytes to stdout: straight to the binary buffer when there is one."""
    buffer = getattr(ctx.out, "buffer", None)
    if buffer is not None:
        ctx.out.flush()

        def write(data: bytes) -> None:
            buffer.write(data)
            buffer.flush()

        return write

    def write_text(data: bytes) -> None:
        ctx.out.write(data.decode("utf-8", "replace"))
        ctx.out.flush()

    return write_text


def search_local(ctx: Ctx, plan: Dict[str, Any], as_json: bool) -> Dict[str, Any]:
    """Search the plan's files in this process: output written as it goes; returns the summary
    (plus "matches_list" with --json)."""
    import re

    from alter import grepcore

    started = time.monotonic()
    limit = plan.get("max")
    raw = bool(plan.get("raw"))
    color = bool(plan.get("color"))
    strip_out = not raw or not color
    matcher = grepcore.Matcher(plan["pattern"], bool(plan.get("ignore_case")), strip=not raw)
    context = int(plan.get("context") or 0)
    highlight = None
    if color:
        try:
            highlight = re.compile(plan["pattern"], re.IGNORECASE if plan.get("ignore_case") else 0)
        except (re.error, OverflowError, RecursionError, ValueError):
            highlight = None
    writer = grepcore.TextWriter(_out_writer(ctx), strip=strip_out, color=color, highlight=highlight)
    found = searched = total = 0
    matches: List[Dict[str, Any]] = []
    for worker, files, heads in plan.get("files") or []:
        samples = [h.encode("latin-1") for h in heads or []]
        for path in files:
            if limit is not None and found >= limit:
                break
            try:
                total += os.path.getsize(path)
            except OSError:
                continue  # rotated away since the plan was made
            searched += 1
            left = None if limit is None else limit - found
            for hit in grepcore.search_file(path, matcher, context, left, heads=samples):
                found += 1
                if as_json:
                    matches.append(grepcore.match_dict(worker, path, hit, strip_out))
                    continue
                writer.add(worker, path, hit)
    writer.flush()
    summary: Dict[str, Any] = {
        "matches": found,
        "files": searched,
        "bytes": total,
        "truncated": limit is not None and found >= limit,
        "elapsed_ms": int((time.monotonic() - started) * 1000),
    }
    if as_json:
        summary["matches_list"] = matches
    return summary


def search_daemon(ctx: Ctx, args: Dict[str, Any], as_json: bool) -> Dict[str, Any]:
    """Let the daemon search (its grep worker): text blocks, or Match objects with --json."""
    from alter.cli.logview import _events

    if not as_json:
        args = dict(args, format="text")
    write = _out_writer(ctx)
    matches: List[Any] = []
    summary: Any = None
    for kind, data in _events(ctx, "grep", args, follow=False):
        if kind == "text" and isinstance(data, dict):
            write(str(data.get("text") or "").encode("utf-8", "replace"))
        elif kind == "matches" and isinstance(data, dict):
            matches.extend(data.get("matches") or [])
        elif kind == "result":
            summary = data
    if not isinstance(summary, dict):
        summary = {"matches": len(matches)}
    if as_json:
        summary = dict(summary, matches_list=matches)
    return summary


def cmd_grep(ctx: Ctx, p: Parsed) -> int:
    args = _args(ctx, p)
    reply = ctx.call("grep", dict(args, plan=True))
    plan: Optional[Dict[str, Any]] = reply.get("plan") if isinstance(reply, dict) else None
    try:
        if plan is not None and _readable(plan):
            summary = search_local(ctx, plan, ctx.json)
        else:
            summary = search_daemon(ctx, args, ctx.json)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `apm grep ... | head`
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        except OSError:
            pass
        return 0
    if ctx.json:
        matches = summary.pop("matches_list", [])
        ctx.emit_json({"matches": matches, "summary": summary})
        return 0 if matches else 1
    _report(ctx, summary)
    return 0 if summary.get("matches") else 1


def _report(ctx: Ctx, summary: Dict[str, Any]) -> None:
    from alter.cli.render import human_bytes

    es = ctx.err_style
    if summary.get("truncated"):
        ctx.eprint(es(f"apm: stopped after {summary.get('matches')} matches (--max); --max 0 shows them all", "yellow"))
    if ctx.style.enabled:
        n = summary.get("matches", 0)
        ctx.eprint(
            es(
                f"{n} match{'es' if n != 1 else ''} in {summary.get('files', 0)} files "
                f"({human_bytes(summary.get('bytes'))}) in {summary.get('elapsed_ms', 0) / 1000:.2f}s",
                "dim",
            )
        )
