"""Real child processes -> pipes -> the real EventLoop -> WorkerLog -> files.

Also holds the small harness the other test_logs_* integration modules use:
`Pump` spawns a child, add_reader()s its stdout/stderr pipes and feeds the
WorkerLog the way the supervision engine does; `run_until` drives the loop.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from alter.config.options import effective
from alter.daemon.loop import EventLoop
from alter.logs.colors import strip_ansi
from alter.logs.layout import tails
from alter.logs.pipeline import WorkerLog
from alter.paths import resolve

READ_SIZE = 65536


class Bus:
    def __init__(self) -> None:
        self.events: List[Tuple[str, Dict[str, Any]]] = []

    def publish(self, topic: str, payload: Dict[str, Any]) -> None:
        self.events.append((topic, payload))

    def count(self, topic: str) -> int:
        return sum(1 for t, _ in self.events if t == topic)


class Pump:
    """A child whose stdout/stderr are read on the loop and fed to a WorkerLog."""

    def __init__(
        self, loop: EventLoop, wl: WorkerLog, code: str, *args: str, index: int = 1, instances: int = 1
    ) -> None:
        self.loop = loop
        self.wl = wl
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.open = 0
        self.reads = 0
        for pipe, stream in ((self.proc.stdout, "out"), (self.proc.stderr, "err")):
            assert pipe is not None
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._on_read, fd, wl.open_stream(index, stream, instances))
            self.open += 1

    def _on_read(self, fd: int, writer: Any) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            self.loop.remove_reader(fd)
            writer.close()
            self.wl.settle()  # (a big last write may still be on the writer thread: `done` means in the file)
            self.open -= 1
            return
        self.reads += 1
        writer.feed(data)

    @property
    def done(self) -> bool:
        return self.open == 0 and self.proc.poll() is not None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    self.loop.remove_reader(pipe.fileno())
                except (ValueError, KeyError):
                    pass
                pipe.close()


def run_until(loop: EventLoop, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        loop.run_once(max_timeout=0.05)


def run_for(loop: EventLoop, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        loop.run_once(max_timeout=0.02)


class Lateness:
    """A repeating loop timer that records how late it fires (the loop must keep answering)."""

    def __init__(self, loop: EventLoop, interval: float = 0.02) -> None:
        self.loop, self.interval, self.worst, self.fired = loop, interval, 0.0, 0
        self._due = loop.time() + interval
        self._timer = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        self.worst = max(self.worst, now - self._due)
        self.fired += 1
        self._due = now + self.interval
        self._timer = self.loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        self._timer.cancel()


def logenv_for(tmp_path: Any) -> Iterator[Any]:
    """The `logenv` fixture's body (other test_logs_* modules wrap it in their own fixture)."""
    loop = EventLoop()
    bus = Bus()
    made: List[WorkerLog] = []
    pumps: List[Pump] = []

    class Env:
        home = tmp_path

        def __init__(self) -> None:
            self.loop, self.bus = loop, bus

        def worker(
            self, name: str = "api", daemon: Optional[Dict[str, Any]] = None, wall_clock: Any = None, **opts: Any
        ) -> WorkerLog:
            cfg = effective({"name": name, "exec": "x", **opts})
            kw = {"wall_clock": wall_clock} if wall_clock is not None else {}
            wl = WorkerLog(loop, name, cfg, daemon or {}, resolve({"APM_HOME": str(tmp_path)}), bus, **kw)
            made.append(wl)
            return wl

        def pump(self, wl: WorkerLog, code: str, *args: str, **kw: Any) -> Pump:
            p = Pump(loop, wl, code, *args, **kw)
            pumps.append(p)
            return p

    yield Env()
    for p in pumps:
        p.stop()
    for wl in made:
        wl.close()
    loop.close()


@pytest.fixture
def logenv(tmp_path):
    yield from logenv_for(tmp_path)


def file_bodies(paths: List[str]) -> List[bytes]:
    """Text part of every written line (ANSI stripped, head removed), files in the order given."""
    out = []
    for p in paths:
        with open(p, "rb") as f:
            for line in strip_ansi(f.read()).split(b"\n")[:-1]:
                m = re.match(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} \S+ [|!*+] (.*)$", line, re.S)
                assert m, line
                out.append(m.group(1))
    return out


NUMBERED = """
import os, random, sys
n = int(sys.argv[1]); rnd = random.Random(5)
data = b"".join(b"seq %07d %s\\n" % (i, b"p" * 40) for i in range(n))
pos = 0
while pos < len(data):
    step = rnd.randint(1, 6000)          # bursts that cut lines anywhere
    pos += os.write(1, data[pos:pos + step])
"""


def test_numbered_lines_arrive_whole_and_in_order(logenv) -> None:
    wl = logenv.worker()
    p = logenv.pump(wl, NUMBERED, "50000")
    run_until(logenv.loop, lambda: p.done, what="child to finish")
    bodies = file_bodies(wl.files())
    assert [int(b.split()[1]) for b in bodies] == list(range(50000))
    assert wl.status()["lines"] == 50000


BINARY = """
import os, random, sys
rnd = random.Random(11)
blob = bytes(rnd.getrandbits(8) for _ in range(300000))
text = ("ünïcødé ✓ 😀 日本語 \\x1b[1mbold\\x1b[0m \\r\\t\\x00 end\\n" * 50).encode()
data = blob + b"\\n" + text + b"\\xff\\xfe invalid \\xc3\\x28 utf8\\n" + b"tail without newline"
sys.stdout.buffer.write(data); sys.stdout.flush()
open(sys.argv[1], "wb").write(data)
"""


def test_unicode_and_binary_output(logenv, tmp_path) -> None:
    wl = logenv.worker(log_time_format="")
    ref = str(tmp_path / "sent.bin")
    p = logenv.pump(wl, BINARY, ref)
    run_until(logenv.loop, lambda: p.done, what="child to finish")
    with open(ref, "rb") as f:
        sent = f.read()
    head, cont_head = tails("api", None, 1, 1, "out", False, True)
    with open(wl.out_path, "rb") as f:
        written = f.read()
    assert written.endswith(b"\n")
    rebuilt, pieces = [], written[:-1].split(b"\n")
    for piece in pieces:
        if piece.startswith(cont_head):
            rebuilt[-1] += piece[len(cont_head) :]  # a >64 KiB line cut in pieces: glue them back
        else:
            assert piece.startswith(head), piece[:80]
            rebuilt.append(piece[len(head) :])
    assert b"\n".join(rebuilt) == sent  # every byte kept, the partial last line flushed at EOF
    ring = wl.tail(3)
    assert ring[-1]["text"] == "tail without newline"
    assert ring[-2]["text"] == "\ufffd\ufffd invalid \ufffd( utf8"
    assert ring[-3]["text"] == "ünïcødé ✓ 😀 日本語 \x1b[1mbold\x1b[0m \r\t\x00 end"


MIXED = """
import os, sys
for i in range(2000):
    os.write(1 if i % 3 else 2, b"%s %d\\n" % (b"out" if i % 3 else b"err", i))
"""


def test_stdout_and_stderr_share_one_file_in_arrival_order(logenv) -> None:
    wl = logenv.worker(instances=2)
    p = logenv.pump(wl, MIXED, index=2, instances=2)
    run_until(logenv.loop, lambda: p.done, what="child to finish")
    with open(wl.out_path, "rb") as f:
        lines = strip_ansi(f.read()).decode().splitlines()
    outs = [int(x.rsplit(" ", 1)[1]) for x in lines if " api#2 | out " in x]
    errs = [int(x.rsplit(" ", 1)[1]) for x in lines if " api#2 ! err " in x]
    assert outs == [i for i in range(2000) if i % 3] and errs == [i for i in range(2000) if not i % 3]
