"""The `apm` fixture: a private daemon from the built zipapp, in a temp APM_HOME.

    def test_something(apm):
        apm("run", "sleep", "100", "--name", "s")       # -> CompletedProcess (check=True)
        data = apm.json("list")                          # parses --json output
        r = apm("stop", "nope", check=False); assert r.returncode == 3

Every test gets its own APM_HOME and socket name, so daemons never collide.
On teardown the daemon is told to exit, then any process still in its
process tree (daemon, workers, grandchildren) is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from typing import Any, Dict, List, Optional

import psutil
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APM_BIN = os.environ.get("APM_BIN", os.path.join(ROOT, "dist", "apm"))
# One shared extraction root for the whole run: extracting the zipapp once is enough.
SHIV_ROOT = os.environ.get("APM_TEST_SHIV_ROOT", "/tmp/apm-test-shiv")


def _require_build() -> None:
    if not os.path.exists(APM_BIN):
        pytest.exit(f"{APM_BIN} is missing: run `python3 build.py` first (tests/run.sh does)", returncode=2)


class Apm:
    """Runs the built CLI against one private daemon."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.socket = "apm-test-" + uuid.uuid4().hex[:12]
        self.env: Dict[str, str] = dict(os.environ)
        self.env.update({"APM_HOME": home, "APM_SOCKET": self.socket, "SHIV_ROOT": SHIV_ROOT, "NO_COLOR": "1"})
        self.env["APM_GUI_PORT"] = "0"  # no web GUI unless a test asks (tests/integration/web_support.py)
        self.python = os.environ.get("APM_PYTHON", sys.executable)

    def cmd(self, *args: str) -> List[str]:
        return [self.python, APM_BIN, *args]

    def __call__(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60,
        input: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
    ) -> subprocess.CompletedProcess:
        run_env = dict(self.env)
        if env:
            run_env.update(env)
        proc = subprocess.run(
            self.cmd(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=run_env,
            cwd=cwd or self.home,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"apm {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str, **kw: Any) -> Any:
        proc = self(*args, "--json", **kw)
        return json.loads(proc.stdout)

    def daemon_pid(self) -> Optional[int]:
        try:
            with open(os.path.join(self.home, "state", "apm.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def cleanup(self) -> None:
        pid = self.daemon_pid()
        procs: List[psutil.Process] = []
        if pid and psutil.pid_exists(pid):
            try:
                root = psutil.Process(pid)
                procs = [root] + root.children(recursive=True)
            except psutil.Error:
                procs = []
        try:
            subprocess.run(self.cmd("exit", "daemon"), env=self.env, capture_output=True, timeout=20)
        except subprocess.TimeoutExpired:
            pass
        # Anything still carrying this test's APM_HOME in its environment is ours too.
        for p in psutil.process_iter(["pid"]):
            try:
                if p.pid != os.getpid() and p.environ().get("APM_HOME") == self.home:
                    procs.append(p)
            except psutil.Error:
                continue
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        # This VM's pid 1 never reaps orphans: a zombie is dead enough (psutil.wait_procs would wait on it).
        deadline = time.monotonic() + 5
        while procs and time.monotonic() < deadline:
            procs = [p for p in procs if pid_alive(p.pid)]
            if procs:
                time.sleep(0.02)


@pytest.fixture
def apm(tmp_path_factory: pytest.TempPathFactory):
    _require_build()
    home = str(tmp_path_factory.mktemp("apm-home"))
    os.chmod(home, 0o755)
    inst = Apm(home)
    yield inst
    inst.cleanup()
    shutil.rmtree(home, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False
