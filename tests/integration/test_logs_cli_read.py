"""`apm log` and `apm flush` through the built dist/apm and a real daemon (docs/cli.md, docs/logs.md).

Replay then live follow, several workers interleaved in time order, --err/--out, --since, name#N,
lines split across reads, ANSI and çN- rendering (files, colour, strip_ansi), unicode and binary
output, flush, and malformed arguments.  Also the helpers the other test_logs_cli_* modules use.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from tests.helpers import wait_for
from tests.integration.conftest import Apm

PY = sys.executable
HEAD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) (\S+?)(?:#(\d+))? ([|!*+]) (.*)$")

COUNTER = """
import sys, time
tag = sys.argv[1]
delay = float(sys.argv[2])
i = 0
while True:
    print(tag, i, flush=True)
    i += 1
    time.sleep(delay)
"""


# ---------------------------------------------------------------------------------------------- helpers


def script(tmp_path: Any, code: str, name: str = "child.py") -> str:
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        f.write(code)
    return path


def run_worker(apm: Apm, tmp_path: Any, name: str, code: str, *args: str, flags: Tuple[str, ...] = ()) -> None:
    path = script(tmp_path, code, f"{name}.py")
    apm("run", PY, path, *flags, "--name", name, "--no-wait", "--", *args)


def log_file(apm: Apm, name: str) -> str:
    return os.path.join(apm.home, "logs", name, "out.log")


SGR = re.compile(r"\x1b\[[0-9;]*m")


def file_lines(path: str) -> List[str]:
    """A log file's lines as a reader sees them (apm's colour codes removed)."""
    with open(path, "rb") as f:
        return SGR.sub("", f.read().decode("utf-8", "replace")).splitlines()


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def log_json(apm: Apm, *args: str) -> List[Dict[str, Any]]:
    out = apm("log", *args, "--no-follow", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def numbers(lines: List[Dict[str, Any]], tag: str) -> List[int]:
    return [int(d["text"].split()[1]) for d in lines if d["text"].startswith(tag + " ")]


class Stream:
    """A long-running `apm ...` (log -f, events): its stdout lines arrive in a queue."""

    def __init__(self, apm: Apm, *args: str) -> None:
        # Ctrl+C comes from a terminal, where SIGINT has its default action; a test run started in the
        # background of a script inherits SIGINT ignored (POSIX shells do that), so restore it.
        self.proc = subprocess.Popen(
            apm.cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=apm.env, cwd=apm.home,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        self.lines: queue.Queue[Tuple[float, str]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))

    def take(self, count: int, timeout: float = 10.0) -> List[str]:
        return [line for _, line in self.take_timed(count, timeout)]

    def take_timed(self, count: int, timeout: float = 10.0) -> List[Tuple[float, str]]:
        out: List[Tuple[float, str]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"got {len(out)} of {count} lines: {out[-5:]}")
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                continue
        return out

    def drain(self, seconds: float) -> List[Tuple[float, str]]:
        out: List[Tuple[float, str]] = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                return out

    def interrupt(self) -> Tuple[int, str]:
        """Ctrl+C: the exit code and what it printed on stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert self.proc.stderr is not None
        return self.proc.returncode, self.proc.stderr.read().decode("utf-8", "replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def request(
    apm: Apm, cmd: str, args: Optional[Dict[str, Any]] = None, timeout: float = 10.0, replies: int = 1
) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """One raw protocol request: (events, reply)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect("\0" + apm.socket)
    try:
        s.sendall(json.dumps({"v": 1, "id": 1, "cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf, events = b"", []
        while True:
            chunk = s.recv(65536)
            assert chunk, f"connection closed during {cmd}"
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if "event" in msg:
                    events.append(msg)
                else:
                    return events, msg
    finally:
        s.close()


def error_type(apm: Apm, cmd: str, args: Dict[str, Any]) -> str:
    _, reply = request(apm, cmd, args)
    assert reply["ok"] is False, reply
    return str(reply["error"]["type"])


def wait_lines(apm: Apm, name: str, tag: str, count: int, timeout: float = 15.0) -> None:
    wait_for(
        lambda: len([x for x in file_lines(log_file(apm, name)) if f"| {tag} " in x]) >= count,
        timeout=timeout,
        what=f"{count} lines from {name}",
    )


# ---------------------------------------------------------------------------------------------- tests


def test_replay_then_follow_live(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "count", COUNTER, "n", "0.05")
    wait_lines(apm, "count", "n", 30)
    stream = Stream(apm, "log", "count", "-n", "5")
    try:
        first = stream.take(5)
        replayed = [int(m.group(5).split()[1]) for m in map(HEAD.match, first) if m]
        assert len(replayed) == 5 and replayed == list(range(replayed[0], replayed[0] + 5)), first
        assert all(HEAD.match(x).group(2) == "count" and HEAD.match(x).group(4) == "|" for x in first)
        # Then live: the numbers go on, none missing, none twice, as the child writes them.
        live = stream.take_timed(20, timeout=10)
        seq = [int(HEAD.match(x).group(5).split()[1]) for _, x in live]
        assert seq == list(range(replayed[-1] + 1, replayed[-1] + 21)), seq
        spread = live[-1][0] - live[0][0]
        assert spread > 0.5, f"20 lines written 50 ms apart arrived within {spread:.2f}s: not live"
        code, err = stream.interrupt()
        assert code == 0 and err.strip() == "", (code, err)
    finally:
        stream.close()
    # The daemon dropped the follower: nothing left subscribed keeps it busy, and it still answers.
    assert apm("list").returncode == 0


def test_two_workers_interleaved_in_time_order(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "a", COUNTER, "a", "0.02")
    run_worker(apm, tmp_path, "b", COUNTER, "b", "0.03")
    wait_lines(apm, "a", "a", 40)
    wait_lines(apm, "b", "b", 40)
    lines = log_json(apm, "a", "b", "-n", "60")
    assert len(lines) == 60
    assert {d["worker"] for d in lines} == {"a", "b"}
    stamps = [d["ts"] for d in lines]
    assert stamps == sorted(stamps)
    for tag in ("a", "b"):
        got = numbers(lines, tag)
        assert got == list(range(got[0], got[0] + len(got))), got
    # The text form: the same order, heads from the files' layout.
    text = apm("log", "a", "b", "-n", "60", "--no-follow").stdout.splitlines()
    heads = [HEAD.match(x) for x in text]
    assert all(heads) and len(heads) == 60
    clock = [h.group(1) for h in heads]
    assert clock == sorted(clock)
    assert {h.group(2) for h in heads} == {"a", "b"}


STREAMS = """
import os, sys, time
i = 0
n = int(os.environ["APM_INDEX"]) + 1
while True:
    print("out", n, i, flush=True)
    print("err", n, i, file=sys.stderr, flush=True)
    i += 1
    time.sleep(0.03)
"""


def test_streams_instances_and_since(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "w", STREAMS, flags=("--instances", "2"))
    wait_for(lambda: sum(" | out 2 " in x for x in file_lines(log_file(apm, "w"))) >= 20, timeout=15, what="output")
    err = apm("log", "w", "--err", "-n", "30", "--no-follow").stdout.splitlines()
    assert len(err) == 30 and all(HEAD.match(x).group(4) == "!" and " ! err " in x for x in err)
    out = log_json(apm, "w", "--out", "-n", "30")
    assert len(out) == 30 and {d["stream"] for d in out} == {"out"}
    assert {d["index"] for d in out} == {1, 2}
    two = log_json(apm, "w#2", "-n", "40")
    assert len(two) == 40
    assert {d["index"] for d in two} <= {0, 2} and any(d["index"] == 2 for d in two)
    assert all(d["text"].split()[1] == "2" for d in two if d["stream"] != "apm")
    assert all(d["head"].startswith(time.strftime("%Y-")) and " w#2 " in d["head"] for d in two if d["index"] == 2)
    # --since: epoch seconds, a duration and a clock time all cut the replay at that time.
    cut = time.time()
    wait_for(lambda: [d for d in log_json(apm, "w", "-n", "5") if d["ts"] > cut + 0.3], timeout=10, what="new lines")
    after = log_json(apm, "w", "--since", f"{cut:.6f}")
    assert after and all(d["ts"] >= cut for d in after)
    assert len(after) < len(log_json(apm, "w", "--since", "10m"))
    clock = time.strftime("%H:%M:%S", time.localtime(cut + 1))
    later = log_json(apm, "w", "--since", clock)
    assert all(d["ts"] >= int(cut + 1) for d in later)
    # -n with --since: the last n of them.
    assert len(log_json(apm, "w", "--since", "10m", "-n", "7")) == 7


PIECES = r"""
import os, sys, time
w = sys.stdout.buffer
def put(b):
    w.write(b); w.flush(); time.sleep(0.15)
put(b"hel")
put(b"lo wor")
put(b"ld\nsecond ")
put(b"line\n")
put("héllo wörld 🌍\n".encode())
put(b"bin \xff\xfe\x00 end\n")
put(b"\x1b[31mred\x1b[0m text\n")
put(b"DONE\n")
time.sleep(600)
"""


def test_split_lines_unicode_binary_ansi_and_prefix_colours(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "pieces", PIECES, flags=("--prefix", "ç82-webçR-"))
    run_worker(apm, tmp_path, "plain", PIECES, flags=("--strip_ansi", "true"))
    wait_for(lambda: b"DONE" in read_bytes(log_file(apm, "pieces")), timeout=15, what="pieces output")
    wait_for(lambda: b"DONE" in read_bytes(log_file(apm, "plain")), timeout=15, what="plain output")
    raw = read_bytes(log_file(apm, "pieces"))
    # The file: the prefix in its own colour, the child's bytes untouched, lines assembled across reads.
    assert b"\x1b[38;5;82mweb\x1b[0m \x1b[38;5;244m|\x1b[0m hello world\n" in raw
    assert b" second line\n" in raw
    assert "héllo wörld 🌍\n".encode() in raw
    assert b"| \x1b[0m" not in raw and b"bin \xff\xfe\x00 end\n" in raw
    assert b"\x1b[31mred\x1b[0m text\n" in raw
    assert b"\x1b[38;5;214m" in raw  # the coloured timestamp
    # strip_ansi: no escape at all in the file, the text is still there.
    plain = read_bytes(log_file(apm, "plain"))
    assert b"\x1b" not in plain and b" plain | red text\n" in plain and b" plain | hello world\n" in plain
    # apm log without colour: every escape gone; invalid UTF-8 replaced in line dicts.
    lines = log_json(apm, "pieces", "-n", "20")
    texts = [d["text"] for d in lines if d["stream"] == "out"]
    assert texts == ["hello world", "second line", "héllo wörld 🌍", "bin \ufffd\ufffd\x00 end", "red text", "DONE"]
    assert all("\x1b" not in d["head"] for d in lines)
    assert all(d["head"].endswith(" web | ") for d in lines if d["stream"] == "out")
    # With colour (a terminal, or --color): heads coloured as in the file, the child's colours kept.
    coloured = apm("log", "pieces", "-n", "20", "--no-follow", "--color").stdout
    assert "\x1b[38;5;82mweb\x1b[0m" in coloured and "\x1b[31mred\x1b[0m text\x1b[0m\n" in coloured
    assert "\x1b" not in apm("log", "pieces", "-n", "20", "--no-follow").stdout  # NO_COLOR is set


def test_flush_and_info_files(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "f", COUNTER, "f", "0.02", flags=("--log_max_size", "4K", "--log_max_files", "20"))
    wait_for(lambda: len(os.listdir(os.path.dirname(log_file(apm, "f")))) >= 3, timeout=15, what="rotations")
    info = apm("info", "f").stdout
    assert "Logs" in info and log_file(apm, "f") in info and log_file(apm, "f") + ".1" in info
    files = apm.json("info", "f")["logs"]["files"]
    assert len(files) >= 3 and files[-1]["path"] == log_file(apm, "f") and files[-1]["size"] > 0
    before = max(numbers(log_json(apm, "f", "-n", "5"), "f"))
    r = apm("flush", "f")
    assert "flushed the logs of f" in r.stdout
    assert os.listdir(os.path.dirname(log_file(apm, "f"))) == ["out.log"]
    wait_for(lambda: log_json(apm, "f", "-n", "1000"), timeout=5, what="new lines after the flush")
    after = numbers(log_json(apm, "f", "-n", "1000"), "f")
    assert after and min(after) > before  # the file and the ring were emptied
    assert apm.json("flush", "all") == {"flushed": ["f"]}
    r = apm("flush", "nope", check=False)
    assert r.returncode == 3 and "no worker named 'nope'" in r.stderr


def test_malformed_arguments(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "m", COUNTER, "m", "0.2")
    cases = [
        (("log",), 2, "missing"),
        (("log", "nope", "--no-follow"), 3, "no worker named 'nope'"),
        (("log", "m", "-n", "-1"), 2, "-n -1"),
        (("log", "m", "-n", "abc"), 2, "-n abc"),
        (("log", "m", "--since", "garbage"), 2, "--since 'garbage'"),
        (("log", "m", "--since", "12"), 2, "--since 12"),
        (("log", "m#9", "--no-follow"), 3, "no instance #9"),
        (("log", "m#x", "--no-follow"), 2, "m#x"),
        (("log", "m", "--err", "--out"), 2, "--err and --out"),
        (("flush",), 2, "missing"),
    ]
    for argv, code, text in cases:
        r = apm(*argv, check=False, timeout=20)
        assert r.returncode == code and text in r.stderr, (argv, r.returncode, r.stderr)
    # The daemon checks again: raw requests with bad arguments get UsageError / NotFound, never a crash.
    assert error_type(apm, "log", {"targets": ["m"], "n": -1}) == "UsageError"
    assert error_type(apm, "log", {"targets": ["m"], "n": 100_001}) == "UsageError"
    assert error_type(apm, "log", {"targets": []}) == "UsageError"
    assert error_type(apm, "log", {"targets": "m"}) == "UsageError"
    assert error_type(apm, "log", {"targets": [3]}) == "UsageError"
    assert error_type(apm, "log", {"targets": ["m"], "since": "garbage"}) == "UsageError"
    assert error_type(apm, "log", {"targets": ["m"], "since": -5}) == "UsageError"
    assert error_type(apm, "log", {"targets": ["m"], "stream": "both"}) == "UsageError"
    assert error_type(apm, "log", {"targets": ["m"], "follow": "yes"}) == "UsageError"
    assert error_type(apm, "log", {"targets": ["nope"]}) == "NotFound"
    assert error_type(apm, "flush", {}) == "UsageError"
    assert error_type(apm, "flush", {"name": "nope"}) == "NotFound"
    _, ok = request(apm, "log", {"targets": ["m", "m#1"], "n": 2, "follow": False})
    assert ok["ok"] is True and ok["result"] == {"lines": 2}
    assert apm("list").returncode == 0
