"""`python -m alter.daemon.grep_worker`: one `apm grep`, searched in a process of its own.

The daemon starts it for a `grep` request (log_handlers.GrepJob) from a caller that does not search
the files itself (the web API; a CLI that cannot read them).  Why a process and not a thread: a
regex call holds the GIL for a whole chunk, and a search of a big log in a thread of the daemon
would stall its event loop; a process uses the other core and leaves the loop alone.

stdin   the job, JSON: {"id": request id, "pattern", "ignore_case", "context", "max" (null = all),
        "raw", "color", "format": "matches" | "text",
        "files": [[worker, [paths oldest first], [rendered line heads]], ...]}
stdout  protocol frames ready for the client (events of request `id`: the daemon passes them
        through untouched), then one last line: {"summary": {...}} or {"error": "message"}.
        `matches` format: `matches` events {"matches": [Match]} (200 matches or 50 ms each);
        `text` format: `text` events {"text": grep-style lines, "matches": n} (~256 KiB each).

A closed stdout (the client went away, the daemon killed us) ends the search quietly.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import IO, Any, Dict, List

from alter import grepcore
from alter.control import protocol

BATCH_MATCHES = 200
BATCH_SECONDS = 0.05
TEXT_BATCH = 256 * 1024


def highlighter(job: Dict[str, Any]) -> Any:
    """The str regex that colours the matched text in `text` output (None without colour)."""
    if not job.get("color"):
        return None
    try:
        return re.compile(job["pattern"], re.IGNORECASE if job.get("ignore_case") else 0)
    except (re.error, OverflowError, RecursionError, ValueError):
        return None


def run(job: Dict[str, Any], out: IO[bytes]) -> Dict[str, Any]:
    """Search every file of the job, writing event frames to `out`; returns the summary."""
    started = time.monotonic()
    limit = job.get("max")
    raw = bool(job.get("raw"))
    strip_out = not raw or not job.get("color")  # lines as shown: without colour codes unless --raw in colour
    matcher = grepcore.Matcher(job["pattern"], bool(job.get("ignore_case")), strip=not raw)
    context = int(job.get("context") or 0)
    text = job.get("format") == "text"
    found = searched = total = 0
    batch: List[Dict[str, Any]] = []
    flushed = time.monotonic()

    def send_text(data: bytes) -> None:
        out.write(protocol.event(job["id"], "text", {"text": data.decode("utf-8", "replace")}))
        out.flush()

    writer = grepcore.TextWriter(
        send_text, strip=strip_out, color=bool(job.get("color")), highlight=highlighter(job), batch=TEXT_BATCH
    )
    for worker, files, heads in job["files"]:
        samples = [h.encode("latin-1") for h in heads or []]
        for path in files:
            if limit is not None and found >= limit:
                break
            try:
                total += os.path.getsize(path)
            except OSError:
                continue  # rotated away since it was listed
            searched += 1
            left = None if limit is None else limit - found
            for hit in grepcore.search_file(path, matcher, context, left, heads=samples):
                found += 1
                if text:
                    writer.add(worker, path, hit)
                    continue
                batch.append(grepcore.match_dict(worker, path, hit, strip_out))
                if len(batch) >= BATCH_MATCHES or time.monotonic() - flushed > BATCH_SECONDS:
                    out.write(protocol.event(job["id"], "matches", {"matches": batch}))
                    out.flush()
                    batch, flushed = [], time.monotonic()
    if text:
        writer.flush()
    elif batch:
        out.write(protocol.event(job["id"], "matches", {"matches": batch}))
        out.flush()
    return {
        "matches": found,
        "files": searched,
        "bytes": total,
        "truncated": limit is not None and found >= limit,
        "elapsed_ms": int((time.monotonic() - started) * 1000),
    }


def main() -> int:
    out = sys.stdout.buffer
    try:
        job = json.loads(sys.stdin.buffer.read())
        summary = run(job, out)
        out.write(json.dumps({"summary": summary}).encode() + b"\n")
        out.flush()
    except BrokenPipeError:
        return 0
    except Exception as exc:  # reported to the client by the daemon
        try:
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
            out.flush()
        except OSError:
            pass
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
