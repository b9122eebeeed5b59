"""The daemon's capture pipes: enlarged so a chatty child rarely blocks; bulk output arrives whole.

Through the built dist/apm and a real daemon (docs/logs.md, "Capture").
"""

from __future__ import annotations

import os

from tests.helpers import wait_for
from tests.integration.conftest import Apm
from tests.integration.test_logs_cli_read import file_lines, log_file, run_worker

PIPE_SIZES = """
import fcntl, sys, time
F_GETPIPE_SZ = 1032
print("stdout pipe", fcntl.fcntl(1, F_GETPIPE_SZ), flush=True)
print("stderr pipe", fcntl.fcntl(2, F_GETPIPE_SZ), file=sys.stderr, flush=True)
time.sleep(60)
"""

BULK = """
import os, sys
n = int(sys.argv[1])
data = b"".join(b"bulk %07d %s\\n" % (i, b"y" * 80) for i in range(n)) + b"partial-last-line"
view = memoryview(data)
for off in range(0, len(data), 300000):  # big writes: reads come back full, writes go to the writer thread
    os.write(1, view[off:off + 300000])
"""


def test_capture_pipes_are_enlarged(apm: Apm, tmp_path) -> None:
    run_worker(apm, tmp_path, "pipes", PIPE_SIZES)
    path = log_file(apm, "pipes")
    wait_for(lambda: len(file_lines(path)) >= 2, timeout=15, what="the pipe sizes in the log")
    sizes = {}
    for line in file_lines(path)[-2:]:
        stream, size = line.split(" ")[-3], int(line.split(" ")[-1])
        sizes[stream] = size
    with open("/proc/sys/fs/pipe-max-size") as f:
        root_size = min(1 << 20, int(f.read()))
    # A root daemon (the test daemon) enlarges both; a user's daemon stdout only, to 256 KiB.
    want = {"stdout": root_size, "stderr": root_size} if os.geteuid() == 0 else {"stdout": 256 << 10, "stderr": 65536}
    assert sizes == want
    apm("remove", "pipes")


def test_bulk_output_arrives_whole_and_in_order(apm: Apm, tmp_path) -> None:
    n = 80_000  # ~7.4 MB in 300 KB writes, ~15 MB in the files: one rotation on the way
    run_worker(apm, tmp_path, "bulk", BULK, str(n))  # (a clean exit is not restarted by default)
    path = log_file(apm, "bulk")
    wait_for(lambda: any("partial-last-line" in line for line in file_lines(path)[-3:]), timeout=60, what="the end")
    rotated = sorted((p for p in os.listdir(os.path.dirname(path)) if p.startswith("out.log.")), reverse=True)
    files = [os.path.join(os.path.dirname(path), p) for p in rotated] + [path]  # oldest first
    body = [line.split("| ", 1)[1] for f in files for line in file_lines(f) if "| " in line]
    assert body[:n] == [f"bulk {i:07d} {'y' * 80}" for i in range(n)]  # none lost, doubled or broken
    assert body[n] == "partial-last-line"  # flushed at exit, with a newline added
    info = apm.json("info", "bulk")["logs"]
    assert info["dropped_lines"] == 0 and info["error"] is None and len(files) == 2
    apm("remove", "bulk")
