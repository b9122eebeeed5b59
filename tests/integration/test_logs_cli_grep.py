"""`apm grep` over current and rotated files, and rotation under load, through dist/apm and a real daemon."""

from __future__ import annotations

import json
import os
import re

from tests.helpers import wait_for
from tests.integration.conftest import Apm
from tests.integration.test_logs_cli_read import error_type, file_lines, log_file, request, run_worker

BURST = """
import sys
n = int(sys.argv[1])
out = []
for i in range(n):
    out.append("seq %06d %s%s\\n" % (i, "MARK-%d " % i if i % 100 == 0 else "", "x" * 60))
    if len(out) == 500:
        sys.stdout.write("".join(out)); out = []
sys.stdout.write("".join(out))
sys.stdout.write("DONE\\n")
sys.stdout.flush()
import time
time.sleep(600)
"""

GREP_LINE = re.compile(r"^(\w+)/(out\.log(?:\.\d+)?)([:-])(\d+)([:-])(.*)$")


def done(apm: Apm, name: str) -> bool:
    return any(line.endswith("| DONE") for line in file_lines(log_file(apm, name)))


def test_grep_regex_ignore_case_context_across_rotated_files(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "g", BURST, "3000", flags=("--log_max_size", "32K", "--log_max_files", "100"))
    run_worker(apm, tmp_path, "h", BURST, "300")
    run_worker(apm, tmp_path, "k", BURST, "20", flags=("--prefix", "ç82-myçR-app"))
    wait_for(lambda: done(apm, "g") and done(apm, "h") and done(apm, "k"), timeout=20, what="the workers' output")
    # One worker: every MARK in order, oldest rotated file first, grep's file:line:text form.
    r = apm("grep", r"MARK-\d+ ", "g")
    lines = r.stdout.splitlines()
    assert len(lines) == 30, lines[:5]
    parsed = [GREP_LINE.match(x) for x in lines]
    assert all(parsed), lines[:3]
    marks = [int(re.search(r"MARK-(\d+)", x).group(1)) for x in lines]
    assert marks == list(range(0, 3000, 100))
    files = [m.group(2) for m in parsed]
    order = [int(f.rsplit(".", 1)[1]) if f != "out.log" else 0 for f in files]
    assert len(set(files)) > 5 and order == sorted(order, reverse=True)  # oldest rotated file first
    # The line numbers are real: the numbered file line holds the match.
    for m in parsed[::7]:
        assert m is not None
        path = os.path.join(os.path.dirname(log_file(apm, "g")), m.group(2))
        assert file_lines(path)[int(m.group(4)) - 1].endswith(m.group(6))
    # Every worker, case folded, with context: `-` lines around `:` matches, `--` between groups.
    r = apm("grep", "-i", "mark-2\\d\\d ", "-C", "2")
    out = r.stdout.splitlines()
    groups = "\n".join(out).split("\n--\n")
    assert len(groups) == 2 and all(len(g.splitlines()) == 5 for g in groups), out
    for group in groups:
        rows = [GREP_LINE.match(x) for x in group.splitlines()]
        assert [m.group(3) for m in rows] == ["-", "-", ":", "-", "-"]
        nums = [int(m.group(4)) for m in rows]
        assert nums == list(range(nums[0], nums[0] + 5))
        seqs = [int(re.search(r"seq (\d+)", m.group(6)).group(1)) for m in rows]
        assert seqs == list(range(seqs[0], seqs[0] + 5)) and seqs[2] % 100 == 0
    assert {GREP_LINE.match(g.splitlines()[2]).group(1) for g in groups} == {"g", "h"}
    # What a reader sees matches across apm's colour codes (the file has them between the words).
    assert len(apm("grep", r"g \| seq 00012[0-9] ", "g").stdout.splitlines()) == 10
    assert apm("grep", r"g \| seq 00012[0-9] ", "g", "--raw", check=False).returncode == 1
    # --max, --json, no match = exit 1.
    r = apm("grep", "MARK", "--max", "5")  # a plain word: searched raw, shown as read
    assert len(r.stdout.splitlines()) == 5 and "stopped after 5 matches" in r.stderr and "\x1b" not in r.stdout
    every = [x for f in apm.json("info", "g")["logs"]["files"] for x in file_lines(f["path"]) if "MARK" in x]
    assert [x.split(":", 2)[2] for x in r.stdout.splitlines()] == every[:5]
    # A colour code inside the prefix word (myESC[0mapp): that worker is searched as read, still found.
    assert len(apm("grep", "myapp", "k").stdout.splitlines()) == 22  # 20 lines + DONE + `started pid`
    data = json.loads(apm("grep", r"MARK-1\d\d\d ", "g", "--json").stdout)
    assert [m["line_no"] > 0 and m["worker"] == "g" for m in data["matches"]] == [True] * 10
    assert data["summary"]["matches"] == 10 and data["summary"]["files"] > 5 and not data["summary"]["truncated"]
    r = apm("grep", "no such text anywhere", check=False)
    assert r.returncode == 1 and r.stdout == ""
    # Bad input.
    r = apm("grep", "(unclosed", check=False)
    assert r.returncode == 2 and "invalid regular expression '(unclosed'" in r.stderr
    r = apm("grep", "x", "nope", check=False)
    assert r.returncode == 3 and "no worker named 'nope'" in r.stderr
    r = apm("grep", "x", "-C", "-1", check=False)
    assert r.returncode == 2
    assert error_type(apm, "grep", {"pattern": "("}) == "UsageError"
    assert error_type(apm, "grep", {"pattern": ""}) == "UsageError"
    assert error_type(apm, "grep", {"pattern": "x", "max": -1}) == "UsageError"
    assert error_type(apm, "grep", {"pattern": "x", "context": 101}) == "UsageError"
    assert error_type(apm, "grep", {"pattern": "x", "name": "g#2"}) == "UsageError"
    events, reply = request(apm, "grep", {"pattern": "MARK-2900 ", "name": "g"})
    assert reply["ok"] and reply["result"]["matches"] == 1 and events[0]["event"] == "matches"
    assert [m["line_no"] > 0 and "MARK-2900 " in m["line"] for m in events[0]["data"]["matches"]] == [True]


FLOOD = """
import os, sys, time
n = int(sys.argv[1])
pad = b"y" * 80
buf = []
for i in range(n):
    buf.append(b"seq %07d %s\\n" % (i, pad))
    if len(buf) == 200:
        os.write(1, b"".join(buf)); buf = []
os.write(1, b"".join(buf) + b"DONE\\n")
time.sleep(600)
"""


def test_no_line_lost_or_doubled_across_50_rotations_under_load(apm: Apm, tmp_path) -> None:
    total = 60_000
    run_worker(
        apm,
        tmp_path,
        "r",
        FLOOD,
        str(total),
        flags=("--log_max_size", "100K", "--log_max_files", "1000", "--strip_ansi", "true"),
    )
    wait_for(lambda: done(apm, "r"), timeout=30, what="the flood to be written")
    logs = apm.json("info", "r")["logs"]
    assert logs["rotations"] >= 50 and logs["error"] is None and logs["dropped_lines"] == 0
    seen = []
    line_re = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} r \| seq (\d{7}) y{80}$")
    for f in logs["files"]:
        assert f["size"] <= 100 * 1024
        for line in file_lines(f["path"]):
            m = line_re.match(line)
            if m:
                seen.append(int(m.group(1)))
            else:
                assert re.search(r" r (\* started pid \d+|\| DONE)$", line), line
    assert seen == list(range(total))  # every line once, in order, whole
    # And `apm log` replays across the rotated files with nothing lost at the boundaries.
    out = apm("log", "r", "--out", "-n", "20000", "--no-follow").stdout.splitlines()
    got = [int(x.split()[5]) for x in out if " | seq " in x]
    assert got == list(range(total - 19_999, total))


MIXED = """
import sys
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    out.write(b"n=%05d INFO user=%d ok\\n" % (i, i))
    if i % 97 == 0:
        out.write(b"n=%05d \\x1b[31mERROR\\x1b[0m red word\\n" % i)
    if i % 89 == 0:
        out.write(b"n=%05d CRIT\\x1b[1mICAL split by a colour code\\n" % i)
    if i % 83 == 0:
        out.write(b"n=%05d caf\\xc3\\xa9 \\xe2\\x9c\\x93 and invalid \\xff\\xfe bytes user=%d7 timeout\\n" % (i, i))
out.write(b"DONE\\n")
out.flush()
import time
time.sleep(600)
"""


def test_grep_cli_local_search_and_daemon_search_agree(apm: Apm, tmp_path) -> None:
    """The CLI searches files it can read itself; the daemon's grep worker gives the same text and matches."""
    run_worker(apm, tmp_path, "m", MIXED, "4000", flags=("--log_max_size", "64K", "--log_max_files", "100"))
    wait_for(lambda: done(apm, "m"), timeout=20, what="the worker's output")
    files = [f["path"] for f in apm.json("info", "m")["logs"]["files"]]
    assert len(files) > 3
    every = [x for f in files for x in file_lines(f)]  # the text as read (escapes removed)
    cases = [
        ([], "CRITICAL", "CRITICAL"),  # split by the child's colour code in the file: found as read
        (["-C", "1"], "ERROR|CRITICAL", "ERROR|CRITICAL"),
        ([], r"user=[0-9]{2}7 .*timeout", r"user=[0-9]{2}7 .*timeout"),
        (["-i"], "CAFé|critical", None),
        ([], r"(?<=n=0)\d+ ERROR", r"(?<=n=0)\d+ ERROR"),
        ([], "caf\u00e9 \u2713", "caf\u00e9 \u2713"),
    ]
    for argv, text, pattern in cases:
        r = apm("grep", *argv, text, "m", "--max", "0")
        local = r.stdout
        assert local, argv
        if pattern is not None:  # every matching line as read, in order, numbered as in its file
            want = [x for x in every if re.search(pattern, x)]
            got = [GREP_LINE.match(x) for x in local.splitlines() if GREP_LINE.match(x)]
            assert [m.group(6) for m in got if m.group(3) == ":"] == want
        args: dict = {"pattern": text, "name": "m", "max": 0, "color": False, "ignore_case": "-i" in argv}
        if "-C" in argv:
            args["context"] = int(argv[argv.index("-C") + 1])
        events, reply = request(apm, "grep", dict(args, format="text"), timeout=30)
        assert reply["ok"], reply
        assert "".join(e["data"]["text"] for e in events if e["event"] == "text") == local
        events, reply = request(apm, "grep", args, timeout=30)
        matches = [m for e in events if e["event"] == "matches" for m in e["data"]["matches"]]
        assert [f"{m['worker']}/{os.path.basename(m['file'])}:{m['line_no']}:{m['line']}" for m in matches] == [
            x for x in local.splitlines() if GREP_LINE.match(x) and GREP_LINE.match(x).group(3) == ":"
        ]
        assert reply["result"]["matches"] == len(matches)
    assert "\ufffd\ufffd bytes" in apm("grep", "invalid", "m").stdout  # invalid UTF-8 shown replaced
    # The plan: what the CLI needs to search by itself, validated like a search.
    _, reply = request(apm, "grep", {"pattern": "x", "name": "m", "plan": True})
    plan = reply["result"]["plan"]
    assert plan["pattern"] == "x" and plan["max"] == 1000 and plan["context"] == 0
    [(worker, listed, heads)] = plan["files"]
    assert worker == "m" and listed == files and heads and all("\x1b[" in h for h in heads)
    assert error_type(apm, "grep", {"pattern": "(", "plan": True}) == "UsageError"
    assert error_type(apm, "grep", {"pattern": "x", "format": "xml"}) == "UsageError"
    assert error_type(apm, "grep", {"pattern": "x", "plan": "yes"}) == "UsageError"
