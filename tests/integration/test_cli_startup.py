"""Start-up UX of `apm run/start/restart` through the built `dist/apm`.

Before spawning, `path` must exist and `exec` must resolve in the target user's
PATH; the commands wait `startup_grace` and, when the first attempt dies in
that window, print the exit status, the first 8 KB of its stderr and a hint,
and exit 7 (StartFailed).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Dict, Optional

import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Apm

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")


def worker(apm: Apm, name: str) -> Optional[Dict[str, Any]]:
    for w in apm.json("list")["workers"]:
        if w["name"] == name:
            return w
    return None


def names(apm: Apm) -> set:
    return {w["name"] for w in apm.json("list")["workers"]}


def test_missing_path_and_unknown_exec_are_refused_before_spawning(apm: Apm, tmp_path) -> None:
    r = apm("run", "sleep", "300", "--name", "p", "--path", str(tmp_path / "nope"), check=False)
    assert r.returncode == 7, r.stderr
    assert str(tmp_path / "nope") in r.stderr and "path" in r.stderr and "hint:" in r.stderr
    r = apm("run", "no-such-program-xyz", "--name", "x", check=False)
    assert r.returncode == 7
    assert "'no-such-program-xyz' not found in the PATH of user root" in r.stderr and "hint:" in r.stderr
    r = apm("run", str(tmp_path / "missing.sh"), "--name", "y", check=False)
    assert r.returncode == 7 and "missing.sh" in r.stderr
    assert names(apm) == set(), "nothing is created when the program cannot be spawned"

    # start/restart validate again: the program disappeared since `apm run`.
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\nexec sleep 300\n")
    tool.chmod(0o755)
    apm("run", str(tool), "--name", "t", "--startup-grace", "0")
    apm("stop", "t")
    tool.unlink()
    for cmd in ("start", "restart"):
        r = apm(cmd, "t", check=False)
        assert r.returncode == 7 and "tool.sh" in r.stderr, (cmd, r.stderr)


def test_exec_resolves_in_the_target_users_path(apm: Apm, tmp_path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "apm-test-only-tool"
    tool.write_text("#!/bin/sh\nexec sleep 300\n")
    tool.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    # The daemon (autostarted by the first command) inherits this PATH; root's workers use it.
    apm.env["PATH"] = f"{bindir}:{apm.env['PATH']}"
    apm("run", "apm-test-only-tool", "--name", "mine", "--startup-grace", "0")
    assert (worker(apm, "mine") or {}).get("status") == "running"
    # nobody's PATH is nobody's own (not the daemon's): the same word does not resolve.
    r = apm("run", "apm-test-only-tool", "--name", "theirs", "--user", "nobody", "--path", "/tmp", check=False)
    assert r.returncode == 7 and "not found in the PATH of user nobody" in r.stderr, r.stderr
    assert str(bindir) not in r.stderr.split("PATH of user nobody", 1)[1].split("\n", 1)[0]
    assert worker(apm, "theirs") is None


def test_fast_failure_prints_status_stderr_and_hint(apm: Apm) -> None:
    script = "import sys; sys.stderr.write('boom: missing thing\\n'); sys.exit(3)"
    started = time.monotonic()
    r = apm("run", sys.executable, "-c", script, "--name", "bad", "--startup-grace", "5000", check=False)
    elapsed = time.monotonic() - started
    assert r.returncode == 7, (r.returncode, r.stderr)
    assert "boom: missing thing" in r.stderr
    assert "bad#1 failed during startup (exit 3" in r.stderr, r.stderr
    assert "hint:" in r.stderr and "failed to start" in r.stderr
    assert elapsed < 4, "the failure is reported as soon as the child dies, not after startup_grace"
    assert (worker(apm, "bad") or {}).get("status") == "errored"

    # A pattern the daemon knows gets a specific hint.
    node_like = "import sys; sys.stderr.write(\"Error: Cannot find module 'redis'\\n\"); sys.exit(1)"
    r = apm("run", sys.executable, "-c", node_like, "--name", "nodeish", "--startup-grace", "3000", check=False)
    assert r.returncode == 7 and "npm install" in r.stderr, r.stderr

    # With --json stdout stays empty (no half JSON), the error goes to stderr with the same exit code.
    r = apm("restart", "bad", "--json", check=False)
    assert r.returncode == 7 and r.stdout == "" and "boom: missing thing" in r.stderr


def test_only_the_first_8k_of_stderr_is_shown(apm: Apm) -> None:
    script = "import sys; sys.stderr.write('A' * 6000 + '\\n' + 'B' * 6000 + '\\nTAIL-MARK\\n'); sys.exit(4)"
    r = apm("run", sys.executable, "-c", script, "--name", "big", "--startup-grace", "3000", check=False)
    assert r.returncode == 7
    assert "A" * 6000 in r.stderr and "TAIL-MARK" not in r.stderr
    shown = r.stderr.count("A") + r.stderr.count("B")
    assert 8000 <= shown <= 8300, f"{shown} bytes of stderr shown, wanted the first 8 KB"


def test_waits_startup_grace_and_reports_late_deaths_as_success(apm: Apm) -> None:
    started = time.monotonic()
    r = apm("run", "sleep", "300", "--name", "slow", "--startup-grace", "1200")
    elapsed = time.monotonic() - started
    assert "slow running" in r.stdout
    assert elapsed >= 1.15, f"apm run returned after {elapsed:.2f}s, before startup_grace (1.2s)"
    # Dies after the grace window: run succeeds, the policy takes over.
    r = apm("run", "sh", "-c", "sleep 0.8; exit 2", "--name", "late", "--startup-grace", "200")
    assert r.returncode == 0
    wait_for(lambda: (worker(apm, "late") or {}).get("status") == "errored", 10, what="late errored")
    # --no-wait returns at once even for a program that fails.
    started = time.monotonic()
    r = apm("run", "sh", "-c", "exit 5", "--name", "nowait", "--startup-grace", "3000", "--no-wait", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "nowait"
    assert time.monotonic() - started < 2.5


def test_first_attempt_failure_is_reported_even_with_restart_err(apm: Apm, tmp_path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("")
    script = (
        f"import os, sys, time\nif os.path.exists({str(flag)!r}):\n    sys.exit('broken config')\ntime.sleep(300)\n"
    )
    prog = tmp_path / "prog.py"
    prog.write_text(script)
    r = apm(
        "run", sys.executable, str(prog), "--name", "re", "--restart-err", "--err-delay", "100",
        "--startup-grace", "800", check=False,
    )  # fmt: skip
    assert r.returncode == 7 and "broken config" in r.stderr
    # The restart policy still applies: it keeps retrying in the background.
    wait_for(lambda: (worker(apm, "re") or {})["restarts"]["error"] >= 2, 10, what="error restarts")
    flag.unlink()
    wait_for(lambda: (worker(apm, "re") or {}).get("status") == "running", 10, what="re running once fixed")
    r = apm("restart", "re")
    assert "re running" in r.stdout
    flag.write_text("")
    r = apm("restart", "re", check=False)
    assert r.returncode == 7 and "broken config" in r.stderr
    apm("stop", "re")
    r = apm("start", "re", check=False)
    assert r.returncode == 7 and "broken config" in r.stderr


def test_clean_exit_inside_grace_is_a_finished_job_not_a_failure(apm) -> None:
    r = apm("run", "sh", "-c", "echo done", "--name", "once", check=False)
    assert r.returncode == 0, r.stderr
    [worker] = apm.json("list")["workers"]
    assert worker["name"] == "once" and worker["status"] == "exited"
    # ...while an error exit in the same window is still reported as a failed start.
    r = apm("run", "sh", "-c", "exit 3", "--name", "bad", check=False)
    assert r.returncode == 7 and "exit" in r.stderr
