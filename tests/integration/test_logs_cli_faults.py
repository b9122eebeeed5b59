"""Log destinations that fail, through dist/apm and a real daemon: the worker and the daemon carry on.

A 64 KiB tmpfs as the worker's log folder (disk full, then space again), a log path under a regular
file, syslog to a local UDP receiver and to ports nobody listens on (the control socket keeps
answering fast meanwhile).  Each failure shows in `apm info`, in `apm list --json` and in the
daemon log.
"""

from __future__ import annotations

import os
import pathlib
import re
import socket
import subprocess
import time
from typing import List

import pytest

from tests.helpers import mount_tmpfs, wait_for
from tests.integration.conftest import Apm
from tests.integration.test_logs_cli_read import COUNTER, file_lines, log_file, request, run_worker

STEADY = """
import sys, time
burst = int(sys.argv[1])
sys.stdout.write("".join("burst %05d %s\\n" % (i, "b" * 90) for i in range(burst)))
sys.stdout.flush()
i = 0
while True:
    print("tick %05d" % i, flush=True)
    i += 1
    time.sleep(0.05)
"""


def daemon_log(apm: Apm) -> str:
    with open(os.path.join(apm.home, "apm.log"), errors="replace") as f:
        return f.read()


def pid_of(apm: Apm, name: str) -> int:
    return int(apm.json("info", name)["instances"][0]["pid"])


@pytest.fixture
def tmpfs(tmp_path):
    with mount_tmpfs(str(tmp_path), "64k") as mnt:
        yield pathlib.Path(mnt)


def test_disk_full_keeps_worker_running_and_resumes(apm: Apm, tmp_path, tmpfs) -> None:
    target = str(tmpfs / "out.log")
    run_worker(apm, tmp_path, "full", STEADY, "1500", flags=("--log", target))  # 150 KB into 64 KiB
    wait_for(
        lambda: (apm.json("info", "full")["logs"]["error"] or "").startswith("disk full writing " + target),
        timeout=15,
        what="the disk-full error",
    )
    pid = pid_of(apm, "full")
    # Reported everywhere, the worker untouched, the file holding whole lines only.
    assert "disk full writing " + target in apm("info", "full").stdout
    assert apm.json("list")["workers"][0]["log_error"].startswith("disk full")
    assert "disk full writing " + target in daemon_log(apm)
    ticks_then = max(int(d["text"].split()[1]) for d in _ticks(apm))
    wait_for(
        lambda: max(int(d["text"].split()[1]) for d in _ticks(apm)) > ticks_then + 5,
        timeout=10,
        what="the worker to go on writing (seen live from memory)",
    )
    assert pid_of(apm, "full") == pid and apm.json("list")["workers"][0]["status"] == "running"
    with open(target, "rb") as f:
        assert f.read().endswith(b"\n")
    whole = re.compile(r"full (\| (burst \d{5} b{90}|tick \d{5})|\* started pid \d+)$")
    assert all(whole.search(x) for x in file_lines(target))
    # Space again: writing resumes by itself (the 5 s retry), with a notice of what was lost.
    subprocess.run(["mount", "-o", "remount,size=4m", str(tmpfs)], check=True)
    wait_for(lambda: apm.json("info", "full")["logs"]["error"] is None, timeout=15, what="the error to clear")
    assert apm.json("list")["workers"][0]["log_error"] is None
    notice = [x for x in file_lines(target) if "log writing resumed" in x]
    assert notice and re.search(
        r"\* log writing resumed: \d+ lines \(\d+ bytes\) lost since .* \(disk full\)", notice[0]
    )
    wait_for(lambda: file_lines(target)[-1].split("| ")[-1].startswith("tick"), timeout=5, what="new lines")
    assert pid_of(apm, "full") == pid
    assert apm.json("info", "full")["logs"]["dropped_lines"] > 0


def _ticks(apm: Apm) -> List[dict]:
    from tests.integration.test_logs_cli_read import log_json

    return [d for d in log_json(apm, "full", "-n", "20") if d["text"].startswith("tick")]


def test_unwritable_log_path_is_reported(apm: Apm, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    bad = str(blocker / "sub" / "out.log")
    run_worker(apm, tmp_path, "nowhere", COUNTER, "n", "0.05", flags=("--log", bad))
    wait_for(lambda: apm.json("info", "nowhere")["instances"][0]["status"] == "running", timeout=10, what="running")
    info = apm.json("info", "nowhere")
    assert info["logs"]["error"].startswith(f"cannot write {bad}: Not a directory"), info["logs"]
    assert info["log_error"] == info["logs"]["error"]
    assert f"cannot write {bad}: Not a directory" in apm("info", "nowhere").stdout
    assert f"cannot write {bad}" in daemon_log(apm)
    # The worker runs on and its lines are still served live from memory.
    wait_for(
        lambda: len([d for d in _lines(apm, "nowhere") if d["text"].startswith("n ")]) >= 10,
        timeout=10,
        what="lines from memory",
    )
    assert apm.json("list")["workers"][0]["status"] == "running"


def _lines(apm: Apm, name: str) -> List[dict]:
    from tests.integration.test_logs_cli_read import log_json

    return log_json(apm, name, "-n", "50")


RFC5424 = re.compile(rb"^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ (\S+) (\S+) (\S+) - (.*)$", re.S)

FLOOD = """
import os, sys, time
for k in range(40):
    os.write(1, b"".join(b"flood %07d %s\\n" % (k * 500 + i, b"f" * 60) for i in range(500)))
    time.sleep(0.02)
print("END", flush=True)
time.sleep(600)
"""


def _latencies(apm: Apm, seconds: float) -> List[float]:
    out: List[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        _, reply = request(apm, "list")
        out.append(time.perf_counter() - t0)
        assert reply["ok"]
        time.sleep(0.05)
    return out


def test_syslog_to_udp_receiver_and_to_dead_ports(apm: Apm, tmp_path) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10)
    port = rx.getsockname()[1]
    code = 'import sys, time\nprint("hello \\x1b[32msyslog\\x1b[0m", flush=True)\nprint("oops", file=sys.stderr, flush=True)\ntime.sleep(600)\n'
    run_worker(apm, tmp_path, "sl", code, flags=("--syslog", f"udp://127.0.0.1:{port}", "--syslog_tag", "my-app"))
    got = {}
    while len(got) < 3:
        m = RFC5424.match(rx.recv(65536))
        assert m, "not RFC 5424"
        got[m.group(4)] = m
    assert got[b"out"].group(5) == b"hello syslog" and got[b"out"].group(2) == b"my-app"  # ANSI stripped
    assert got[b"err"].group(5) == b"oops" and int(got[b"err"].group(1)) == 8 + 3  # user.err
    assert got[b"apm"].group(5).startswith(b"started pid")
    rx.close()
    # Nobody listening (UDP and TCP): the output flood goes on, the daemon keeps answering fast.
    dead = []
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        dead.append(s.getsockname()[1])
        s.close()
    run_worker(apm, tmp_path, "deadudp", FLOOD, flags=("--syslog", f"udp://127.0.0.1:{dead[0]}"))
    run_worker(apm, tmp_path, "deadtcp", FLOOD, flags=("--syslog", f"tcp://127.0.0.1:{dead[1]}"))
    lat = _latencies(apm, 1.5)
    assert max(lat) < 0.25, f"`list` took up to {max(lat) * 1000:.0f} ms while syslog was failing"
    wait_for(
        lambda: all(any(x.endswith("| END") for x in file_lines(log_file(apm, n))) for n in ("deadudp", "deadtcp")),
        timeout=20,
        what="both floods written",
    )
    for name in ("deadudp", "deadtcp"):
        s = apm.json("info", name)["logs"]["syslog"]
        assert s["error"] or s["dropped"] or s["queued"], s
        assert len([x for x in file_lines(log_file(apm, name)) if "| flood " in x]) == 20_000
    tcp = apm.json("info", "deadtcp")["logs"]["syslog"]
    assert tcp["connected"] is False and tcp["sent"] == 0 and tcp["error"]
    assert "syslog" in apm("info", "deadtcp").stdout
