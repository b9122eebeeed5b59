"""Web dashboard: page load -> first worker row, with 500 workers (Playwright + Debian chromium).

    python3 bench/gui_first_row.py                 # 500 workers, 7 timed loads, prints a table
    python3 bench/gui_first_row.py --workers 500 --runs 9 --write   # also updates docs/benchmarks.md

One private daemon (bench/common.Apm: own APM_HOME, socket, copy of dist/apm) with the GUI on a
free loopback port and `--workers` running `sleep` workers.  The browser logs in once (session
cookie), then each run opens a NEW page and navigates to `#/workers`:

* "first row"     the page's own `performance.mark('apm-first-row')`, in ms since navigation start
                  (what a user waits for after pressing Enter: HTML, CSS, the ES modules, the
                  auth status and the worker list (both preloaded by index.html), the first render);
* "wall"          from the `page.goto()` call until Playwright sees the first `tr.wrow` (adds
                  Playwright's own round trips and the new tab's start-up: an upper bound);
* "all rows"      first row -> the table reports every worker (aria-rowcount) and the status bar
                  counts them;
* "scroll end"    scrolling to the bottom until the last worker's row exists (the table is windowed).

"cold" runs use a new browser context (empty HTTP cache: every file is fetched), "warm" runs reuse
one context (index.html revalidated with ETag -> 304, the hashed assets from cache).  Target (issue 6): first row under 1 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DIST_APM, Apm, BenchError, close_all, cpu_seconds, loadavg, log, machine, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "Bench-Password-42"
NOTES = """Target (issue 6): first row under 1 s — {verdict}. Where the time goes: index.html preloads the
modules of the Workers page and, in parallel, `GET /api/v1/auth/status` and `GET /api/v1/workers`.
Static files live under a content-hash path (`/a/<tag>/...`, `Cache-Control: immutable`), so a warm
load asks the server for index.html only (a 304); a cold load fetches each module once. The list of
500 workers (~290 KiB of JSON) comes from the stats sampler's per-pid cache, so the daemon reads no
/proc for it (the row above: its own wall time and daemon CPU); drawing the rows in view takes ~0.1 s.
Only the rows on screen exist in the DOM, so scrolling to the 500th row costs one render. The
wall-clock rows add Playwright's own round trips and the new tab's start-up."""
START = "<!-- bench/gui_first_row.py: start -->"
END = "<!-- bench/gui_first_row.py: end -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(port: int, method: str, path: str, body: Any = None, headers: Dict[str, str] = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    if r.status >= 300:
        raise BenchError(f"{method} {path} -> {r.status}: {data[:300]!r}")
    return json.loads(data or b"null")


def setup_daemon(workers: int, exe: str = DIST_APM) -> Any:
    apm = Apm("gui", exe)
    port = free_port()
    apm.env.update(APM_GUI_PORT=str(port), APM_GUI_LOGIN_LIMITS="100,0,1000,1")
    apm.start()
    token = json.loads(apm.cli("gui", "setup-token", "--json"))["setup_token"]
    http_json(port, "POST", "/api/v1/auth/setup", {"setup_token": token, "password": PASSWORD})
    log(f"creating {workers} workers")
    t0 = time.monotonic()
    for i in range(workers):
        apm.run_worker(f"w{i:04d}", namespace=f"ns{i % 12}")
    apm.wait_running(workers, timeout=600)
    log(f"{workers} workers running after {time.monotonic() - t0:.1f} s")
    apm.port = port  # type: ignore[attr-defined]
    return apm


def one_load(ctx: Any, url: str, workers: int) -> Dict[str, float]:
    page = ctx.new_page()
    errors: List[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    page.goto(url + "#/workers", wait_until="commit")
    page.wait_for_selector("tr.wrow", state="attached", timeout=30000)
    first = (time.perf_counter() - t0) * 1000
    mark = page.evaluate("(performance.getEntriesByName('apm-first-row')[0] || {}).startTime || null")
    page.wait_for_function(
        f"document.querySelector('table.wt') && document.querySelector('table.wt').getAttribute('aria-rowcount') === '{workers + 1}'",
        timeout=30000,
    )
    everything = (time.perf_counter() - t0) * 1000
    t1 = time.perf_counter()
    page.evaluate("document.getElementById('main').scrollTop = 1e9")
    page.wait_for_selector(f'tr.wrow[data-name="w{workers - 1:04d}"]', state="attached", timeout=30000)
    scroll = (time.perf_counter() - t1) * 1000
    page.close()
    if errors:
        raise BenchError(f"the page failed: {errors[:3]}")
    return {"first": mark or float("nan"), "wall": first, "all": everything, "scroll": scroll}


def measure_list(apm: Any, runs: int = 10) -> Dict[str, List[float]]:
    """`GET /api/v1/workers` alone: wall ms per request and the daemon's CPU ms per request."""
    token = json.loads(apm.cli("token", "create", "--name", "bench", "--json"))["token"]
    auth = {"Authorization": "Bearer " + token}
    out: Dict[str, List[float]] = {"wall": [], "cpu": [], "bytes": []}
    for _ in range(runs):
        cpu0 = cpu_seconds(apm.pid) or 0.0
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", apm.port, timeout=60)
        conn.request("GET", "/api/v1/workers", headers=auth)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        out["wall"].append((time.perf_counter() - t0) * 1000)
        out["cpu"].append(((cpu_seconds(apm.pid) or 0.0) - cpu0) * 1000)
        out["bytes"].append(float(len(body)))
        if r.status != 200:
            raise BenchError(f"GET /api/v1/workers -> {r.status}: {body[:200]!r}")
    return out


def measure(workers: int, runs: int, exe: str = DIST_APM) -> Dict[str, Any]:
    from playwright.sync_api import sync_playwright

    apm = setup_daemon(workers, exe)
    try:
        listing = measure_list(apm)
        log(
            f"GET /api/v1/workers: median {statistics.median(listing['wall']):.0f} ms wall, "
            f"{statistics.median(listing['cpu']):.0f} ms daemon CPU, {listing['bytes'][0] / 1024:.0f} KiB"
        )
        url = f"http://127.0.0.1:{apm.port}/"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            try:
                results: Dict[str, List[Dict[str, float]]] = {"cold": [], "warm": []}

                def login(ctx: Any) -> None:
                    r = ctx.request.post(url + "api/v1/auth/login", data={"password": PASSWORD})
                    if r.status != 200:
                        raise BenchError(f"login failed: {r.status} {r.text()[:200]}")

                warm = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
                login(warm)
                one_load(warm, url, workers)  # warm-up: fills the HTTP cache, compiles the modules
                for i in range(runs):
                    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
                    login(ctx)
                    results["cold"].append(one_load(ctx, url, workers))
                    ctx.close()
                    results["warm"].append(one_load(warm, url, workers))
                    log(
                        f"run {i + 1}/{runs}: first row cold {results['cold'][-1]['first']:.0f} ms, warm {results['warm'][-1]['first']:.0f} ms"
                    )
                warm.close()
            finally:
                browser.close()
        results["list"] = listing  # type: ignore[assignment]
        return results
    finally:
        close_all([apm])


def summarize(results: Dict[str, List[Dict[str, float]]], workers: int) -> str:
    rows = []
    for kind in ("cold", "warm"):
        runs = results[kind]
        for key, label in (
            ("first", "navigation start → first row"),
            ("wall", "page.goto() → first row seen (wall)"),
            ("all", "page.goto() → all rows counted (wall)"),
            ("scroll", "scroll to the last row"),
        ):
            vals = sorted(r[key] for r in runs if r[key] == r[key])
            rows.append(
                [f"{label}, {kind}", f"{statistics.median(vals):.0f} ms", f"{vals[0]:.0f} ms", f"{vals[-1]:.0f} ms"]
            )
    head = (
        f"{workers} running workers, {len(results['cold'])} runs each; {machine()}; "
        f"load average {loadavg()}; Chromium headless, 1280x800."
    )
    listing = results.get("list")
    if listing:
        for key, label in (("wall", "GET /api/v1/workers alone (wall)"), ("cpu", "GET /api/v1/workers: daemon CPU")):
            vals = sorted(listing[key])  # type: ignore[index]
            rows.append([label, f"{statistics.median(vals):.0f} ms", f"{vals[0]:.0f} ms", f"{vals[-1]:.0f} ms"])
    return head + "\n\n" + table(["measure", "median", "best", "worst"], rows)


def verdict(results: Dict[str, List[Dict[str, float]]]) -> str:
    page = statistics.median(r["first"] for r in results["cold"])
    wall = statistics.median(r["wall"] for r in results["cold"])
    if wall < 1000:
        return f"met (cold median {page:.0f} ms on the page's clock, {wall:.0f} ms wall)"
    if page < 1000:
        return (
            f"met on the page's own clock (cold median {page:.0f} ms from navigation start); the wall-clock "
            f"median ({wall:.0f} ms) adds the harness and was taken under load average {loadavg().split()[0]}"
        )
    return f"NOT met in this run (cold median {page:.0f} ms from navigation start)"


def write_docs(text: str, results: Dict[str, List[Dict[str, float]]]) -> None:
    with open(DOCS, encoding="utf-8") as f:
        doc = f.read()
    notes = NOTES.format(verdict=verdict(results))
    block = f"{START}\n### Page load to first worker row (bench/gui_first_row.py)\n\n{text}\n\n{notes}\n{END}"
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + block + doc[doc.index(END) + len(END) :]
    else:
        marker = "## Web dashboard"
        if marker not in doc:
            doc = doc.rstrip("\n") + f"\n\n{marker}\n"
        at = doc.index(marker) + len(marker)
        nxt = doc.find("\n## ", at)
        insert_at = len(doc) if nxt < 0 else nxt
        doc = doc[:insert_at].rstrip("\n") + "\n\n" + block + "\n" + doc[insert_at:]
    with open(DOCS, "w", encoding="utf-8") as f:
        f.write(doc)
    log(f"updated {os.path.relpath(DOCS, ROOT)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=500)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--write", action="store_true", help="put the table into docs/benchmarks.md (Web dashboard)")
    ap.add_argument("--json", help="also write the raw numbers here")
    ap.add_argument("--apm", default=DIST_APM, help="the apm zipapp to measure (default dist/apm)")
    args = ap.parse_args()
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    results = measure(args.workers, args.runs, args.apm)
    text = summarize(results, args.workers)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.write:
        write_docs(text, results)
    cold_median = statistics.median(r["first"] for r in results["cold"])
    return 0 if cold_median < 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
