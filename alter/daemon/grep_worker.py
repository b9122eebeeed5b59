"""`python -m alter.daemon.grep_worker`: one `apm grep`, searched in a process of its own.

The daemon starts it for every `grep` request (log_handlers.GrepJob).  Why a process and not a
thread: a regex call holds the GIL for a whole chunk, and a search of a big log in a thread of the
daemon would stall its event loop; a process uses the other core and leaves the loop alone.

stdin   the job, JSON: {"id": request id, "pattern", "ignore_case", "context", "max" (null = all),
        "raw", "color", "files": [[worker, [paths oldest first], search raw bytes?], ...]}
stdout  protocol frames ready for the client (`matches` events of request `id`: the daemon passes
        them through untouched), then one last line: {"summary": {...}} or {"error": "message"}.

A closed stdout (the client went away, the daemon killed us) ends the search quietly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, Any, Dict, List

from alter.control import protocol
from alter.logs import search
from alter.logs.colors import strip_ansi_text

CHUNK = 1024 * 1024
BATCH_MATCHES = 200
BATCH_SECONDS = 0.05


def run(job: Dict[str, Any], out: IO[bytes]) -> Dict[str, Any]:
    """Search every file of the job, writing `matches` frames to `out`; returns the summary."""
    started = time.monotonic()
    limit = job.get("max")
    found = searched = total = 0
    batch: List[Dict[str, Any]] = []
    flushed = time.monotonic()

    def send() -> None:
        out.write(protocol.event(job["id"], "matches", {"matches": batch}))
        out.flush()

    for worker, files, raw in job["files"]:
        for path in files:
            if limit is not None and found >= limit:
                break
            try:
                total += os.path.getsize(path)
            except OSError:
                continue  # rotated away since it was listed
            searched += 1
            for match in search.grep(
                [path],
                job["pattern"],
                ignore_case=job["ignore_case"],
                context=job["context"],
                max_matches=None if limit is None else limit - found,
                strip=not raw,
                chunk=CHUNK,
            ):
                match["worker"] = worker
                if raw and (not job["color"] or not job["raw"]):  # lines as read: no colour codes
                    match["line"] = strip_ansi_text(match["line"])
                    match["before"] = [strip_ansi_text(x) for x in match["before"]]
                    match["after"] = [strip_ansi_text(x) for x in match["after"]]
                batch.append(match)
                found += 1
                if len(batch) >= BATCH_MATCHES or time.monotonic() - flushed > BATCH_SECONDS:
                    send()
                    batch, flushed = [], time.monotonic()
    if batch:
        send()
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
