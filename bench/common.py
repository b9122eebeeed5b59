"""Shared helpers for the daemon/CLI benchmarks (bench/cli_latency.py, footprint.py, restart_latency.py, scale.py).

* `Apm`          an isolated apm daemon run from a private copy of dist/apm (own APM_HOME, APM_SOCKET and
                 SHIV_ROOT, so neither other engineers' daemons nor a rebuild of dist/apm disturb it);
* `Supervisord`  supervisord from a private venv (/var/tmp/apm-bench/supervisor), own config and socket;
* `Pm2`          PM2 from a private npm prefix (/var/tmp/apm-bench/pm2), own PM2_HOME;
* timing:        `time_commands()` runs several commands round-robin (so load spikes hit all of them
                 alike) and returns wall times in ms; `summary()` -> median / p90 / min;
* /proc helpers: RSS, CPU ticks, children of a pid, "is this pid running `sleep`".

Everything runs locally, every wait is bounded, and each `close()` kills what it started (the scripts call
them from `finally:`).  The reference tools are installed once and reused: `ensure_supervisor()`,
`ensure_pm2()`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIST_APM = os.path.join(ROOT, "dist", "apm")
# The installed way: Debian's interpreter (the pyenv shim would add ~90 ms to every command).
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
BENCH_HOME = os.environ.get("APM_BENCH_HOME", "/var/tmp/apm-bench")
SUPERVISOR_VENV = os.path.join(BENCH_HOME, "supervisor")
PM2_PREFIX = os.path.join(BENCH_HOME, "pm2")
PM2_BIN = os.path.join(PM2_PREFIX, "node_modules", ".bin", "pm2")
SLEEP = shutil.which("sleep") or "/bin/sleep"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- numbers


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs {model}, Linux {os.uname().release}"


def percentile(samples: Sequence[float], q: float) -> float:
    s = sorted(samples)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(samples: Sequence[float]) -> Dict[str, float]:
    return {
        "n": len(samples),
        "median": statistics.median(samples) if samples else float("nan"),
        "p90": percentile(samples, 0.9),
        "min": min(samples) if samples else float("nan"),
        "max": max(samples) if samples else float("nan"),
    }


def fmt(value: Optional[float], unit: str = "ms", digits: int = 1) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f} {unit}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table (also readable on a terminal)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def time_commands(
    commands: Dict[str, Dict[str, Any]], runs: int, warmup: int = 3, timeout: float = 30.0
) -> Dict[str, List[float]]:
    """Wall time (ms) of each command, `runs` times, round-robin; `warmup` untimed runs of each first.

    commands: {label: {"argv": [...], "env": {...} or None}}.  Output goes to /dev/null.  A non-zero exit
    status stops the benchmark (a failing command is not a fast command).
    """

    def once(spec: Dict[str, Any]) -> float:
        t0 = time.perf_counter()
        proc = subprocess.run(
            spec["argv"], env=spec.get("env"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout
        )
        elapsed = (time.perf_counter() - t0) * 1000
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(spec['argv'])} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
        return elapsed

    for spec in commands.values():
        for _ in range(warmup):
            once(spec)
    out: Dict[str, List[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, spec in commands.items():
            out[label].append(once(spec))
    return out


def raise_nofile(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE (inherited by the daemons we start); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


# --------------------------------------------------------------------------- /proc


def proc_stat(pid: int) -> Optional[List[str]]:
    """Fields of /proc/<pid>/stat after the comm field (index 0 = state), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].decode().split()


def rss_bytes(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> Optional[float]:
    """utime + stime of the process itself (not its children)."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> List[int]:
    """Direct children of pid (every thread's list; needs CONFIG_PROC_CHILDREN, else a /proc scan)."""
    out: List[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    try:
        for tid in tids:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        return out
    except FileNotFoundError:
        pass
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = proc_stat(int(name))
            if fields is not None and int(fields[1]) == pid:
                out.append(int(name))
    return out


def descendants(pid: int) -> Set[int]:
    seen: Set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def kill_tree(pid: Optional[int], grace: float = 5.0) -> None:
    """SIGTERM pid, SIGKILL it and its whole tree after `grace` seconds if still there."""
    if not pid or not is_alive(pid):
        return
    tree = descendants(pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(0.05)
    for p in [pid, *descendants(pid), *tree]:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_until(predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def running_sleep_children(pid: int) -> List[int]:
    """Children of a manager that already exec'd `sleep` (i.e. really running the program)."""
    return [c for c in children(pid) if comm(c) == "sleep" and is_alive(c)]


def kill_and_time_respawn(manager_pid: int, victim: int, timeout: float = 10.0, interval: float = 0.001) -> float:
    """SIGKILL `victim` (a child of manager_pid); seconds until a child that was not there before runs `sleep`.

    Polls /proc every `interval` seconds (so the figure is at most ~interval too high).  "Running" means the
    new child already exec'd the program (its comm is `sleep`), for every manager alike.
    """
    before = set(children(manager_pid))
    t0 = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    deadline = t0 + timeout
    while True:
        for child in children(manager_pid):
            if child not in before and comm(child) == "sleep" and is_alive(child):
                return time.perf_counter() - t0
        if time.perf_counter() > deadline:
            raise BenchError(f"no new child of pid {manager_pid} ran `sleep` within {timeout:g}s of killing {victim}")
        time.sleep(interval)


# --------------------------------------------------------------------------- apm


class Apm:
    """An isolated apm daemon from a private copy of dist/apm.

    `installed=True` (default): SHIV_ROOT is a private folder that the daemon's first start extracts to
    (with .pyc), so every later `apm` command uses that extraction -- what /var/lib/apm/shiv gives an
    installed apm.  `zip_env` is the same environment with no extraction anywhere to be found (the CLI
    then imports straight from the zip, compiling its modules on each run).
    """

    def __init__(self, tag: str, apm: str = DIST_APM) -> None:
        if not os.path.exists(apm):
            raise BenchError(f"{apm} does not exist: run `python3 build.py` first")
        self.tmp = tempfile.mkdtemp(prefix=f"apm-bench-{tag}-")
        self.exe = os.path.join(self.tmp, "apm")
        shutil.copy2(apm, self.exe)  # a concurrent rebuild of dist/apm must not change the zip under us
        self.home = os.path.join(self.tmp, "home")
        self.shiv_root = os.path.join(self.tmp, "shiv")
        os.makedirs(self.shiv_root)
        self.socket_name = f"apm-bench-{tag}-{os.getpid()}"
        self.env = dict(os.environ)
        self.env.update(APM_HOME=self.home, APM_SOCKET=self.socket_name, SHIV_ROOT=self.shiv_root, NO_COLOR="1")
        self.env.pop("APM_DEBUG", None)
        nowhere = os.path.join(self.tmp, "nowhere")
        os.makedirs(nowhere)
        self.zip_env = dict(self.env, SHIV_ROOT=os.path.join(nowhere, "shiv"), HOME=nowhere, TMPDIR=nowhere)
        self.pid: Optional[int] = None
        self.gui = ""

    def argv(self, *args: str) -> List[str]:
        return [PY, self.exe, *args]

    def cli(self, *args: str, timeout: float = 120.0, check: bool = True, env: Optional[Dict[str, str]] = None) -> str:
        proc = subprocess.run(self.argv(*args), env=env or self.env, capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise BenchError(f"apm {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()[-800:]}")
        return proc.stdout.decode()

    def start(self) -> int:
        self.cli("daemon", "--detach", timeout=60)
        with open(os.path.join(self.home, "state", "apm.pid")) as f:
            self.pid = int(f.read().strip())
        self.gui = self.ensure_gui()
        return self.pid

    def ensure_gui(self) -> str:
        """The web GUI is on by default (gui_port 6789); when another daemon holds that port, start ours on a
        free loopback port, so every run measures the same daemon: the default one, GUI listening."""
        try:
            status = self.request("gui", {"action": "status"})
        except BenchError:
            return "n/a (no `gui` command)"
        if not status.get("running"):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            status = self.request("gui", {"action": "start", "port": port, "bind": "127.0.0.1"})
        return f"listening on port {status.get('port')}" if status.get("running") else "not running"

    def extraction(self) -> Optional[str]:
        for name in os.listdir(self.shiv_root):
            site = os.path.join(self.shiv_root, name, "site-packages")
            if name.startswith("apm_") and os.path.isdir(site):
                return site
        return None

    def check_installed(self) -> str:
        """The extraction exists and holds compiled .pyc for the CLI's modules (else we'd time the zip path)."""
        site = self.extraction()
        if site is None:
            raise BenchError(f"no extraction under {self.shiv_root}: the daemon did not extract the zipapp")
        cache = os.path.join(site, "alter", "cli", "__pycache__")
        if not os.path.isdir(cache) or not any(n.endswith(".pyc") for n in os.listdir(cache)):
            raise BenchError(f"{cache} holds no .pyc: the installed path would compile on every run")
        return site

    def request(self, cmd: str, args: Optional[Dict[str, Any]] = None, timeout: float = 30.0) -> Any:
        """One raw request on the control socket (no CLI start-up): returns the result."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect("\0" + self.socket_name)
            sock.sendall(json.dumps({"v": 1, "id": 1, "cmd": cmd, "args": args or {}}).encode() + b"\n")
            buf = b""
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise BenchError(f"daemon closed the connection during {cmd}")
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    if "event" in msg:
                        continue
                    if not msg.get("ok"):
                        raise BenchError(f"{cmd} failed: {msg.get('error')}")
                    return msg.get("result")
        finally:
            sock.close()

    def time_request(self, cmd: str, args: Optional[Dict[str, Any]] = None) -> float:
        t0 = time.perf_counter()
        self.request(cmd, args)
        return (time.perf_counter() - t0) * 1000

    def run_worker(self, name: str, instances: int = 1, wait: bool = False, **options: Any) -> Any:
        """`apm run sleep 100000 --name NAME --instances N [--option value...]`, sent as the CLI sends it."""
        config: Dict[str, Any] = {"exec": SLEEP, "params": ["100000"], "name": name, "path": self.tmp}
        if instances != 1:
            config["instances"] = instances
        config.update(options)
        return self.request("run", {"config": config, "cwd": self.tmp, "wait": wait}, timeout=600)

    def wait_running(self, count: int, timeout: float = 120.0) -> None:
        """Until `count` children of the daemon run `sleep`."""
        assert self.pid is not None
        pid = self.pid
        wait_until(lambda: len(running_sleep_children(pid)) >= count, timeout, 0.05, f"apm's {count} instances")

    def instance_pids(self, name: str) -> List[int]:
        for w in self.request("list").get("workers", []):
            if w.get("name") == name:
                return [i["pid"] for i in w.get("instances", []) if i.get("pid")]
        return []

    def close(self) -> None:
        try:
            if self.pid and is_alive(self.pid):
                try:
                    self.cli("exit", "daemon", timeout=120, check=False)
                except subprocess.TimeoutExpired:
                    pass
                kill_tree(self.pid, grace=10)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- supervisord


def ensure_supervisor() -> str:
    """supervisord in its own venv (made with the same /usr/bin/python3 as apm); returns the venv's bin/."""
    bin_dir = os.path.join(SUPERVISOR_VENV, "bin")
    if not os.path.exists(os.path.join(bin_dir, "supervisord")):
        log(f"installing supervisor into {SUPERVISOR_VENV} (once)")
        subprocess.run([PY, "-m", "venv", SUPERVISOR_VENV], check=True, timeout=300)
        subprocess.run(
            [os.path.join(bin_dir, "pip"), "install", "-q", "supervisor"],
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )
    return bin_dir


class Supervisord:
    """supervisord with `programs` programs running `sleep 100000` (autorestart=true, startsecs=0)."""

    def __init__(self, tag: str, programs: int) -> None:
        self.bin = ensure_supervisor()
        self.tmp = tempfile.mkdtemp(prefix=f"apm-bench-sup-{tag}-")
        self.conf = os.path.join(self.tmp, "supervisord.conf")
        self.sock = os.path.join(self.tmp, "supervisor.sock")
        self.names: List[str] = []
        self.extra: List[str] = []  # names of programs added with add_program()
        self._write_conf(programs)
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def _write_conf(self, programs: int) -> None:
        self.names = [f"w{i}" for i in range(1, programs + 1)]
        lines = [
            "[unix_http_server]",
            f"file={self.sock}",
            "[supervisord]",
            f"logfile={self.tmp}/supervisord.log",
            f"pidfile={self.tmp}/supervisord.pid",
            f"childlogdir={self.tmp}",
            "nodaemon=true",
            "minfds=1024",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]",
            f"serverurl=unix://{self.sock}",
        ]
        for name in self.names + self.extra:
            lines += [
                f"[program:{name}]",
                f"command={SLEEP} 100000",
                "autorestart=true",
                "startsecs=0",
                "startretries=1000",
            ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def ctl_argv(self, *args: str) -> List[str]:
        return [os.path.join(self.bin, "supervisorctl"), "-c", self.conf, *args]

    def _wait_programs(self, timeout: float) -> None:
        assert self.proc is not None
        pid, want = self.proc.pid, len(self.names) + len(self.extra)
        wait_until(lambda: len(running_sleep_children(pid)) >= want, timeout, 0.1, f"supervisord's {want} programs")

    def start(self, timeout: float = 120.0) -> int:
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "supervisord"), "-c", self.conf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(lambda: os.path.exists(self.sock), timeout, 0.05, "supervisord's socket")
        self._wait_programs(timeout)
        return self.proc.pid

    def set_programs(self, programs: int, timeout: float = 300.0) -> None:
        """Rewrite the config with `programs` programs and `supervisorctl update` (adds/starts them)."""
        self._write_conf(programs)
        subprocess.run(self.ctl_argv("update"), check=True, stdout=subprocess.DEVNULL, timeout=timeout)
        self._wait_programs(timeout)

    def add_program(self, name: str, timeout: float = 60.0) -> None:
        """One more `sleep 100000` program (same settings), added with `supervisorctl update`."""
        self.extra.append(name)
        self.set_programs(len(self.names), timeout)

    def close(self) -> None:
        try:
            if self.proc and self.proc.poll() is None:
                subprocess.run(
                    self.ctl_argv("shutdown"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
                )
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    pass
                kill_tree(self.proc.pid, grace=5)
                if self.proc.poll() is None:
                    self.proc.wait(10)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- PM2


def ensure_pm2() -> str:
    if not os.path.exists(PM2_BIN):
        log(f"installing pm2 into {PM2_PREFIX} (once)")
        os.makedirs(PM2_PREFIX, exist_ok=True)
        pkg = os.path.join(PM2_PREFIX, "package.json")
        if not os.path.exists(pkg):
            with open(pkg, "w") as f:
                f.write('{"private": true}\n')
        # cwd=/ so that npm never mistakes a ./pm2 folder for the package
        subprocess.run(
            ["npm", "install", "--prefix", PM2_PREFIX, "pm2"],
            check=True,
            timeout=600,
            cwd="/",
            stdout=subprocess.DEVNULL,
        )
    return PM2_BIN


class Pm2:
    """A PM2 daemon in its own PM2_HOME with `apps` apps running `sleep 100000` (autorestart, restart_delay 0)."""

    def __init__(self, tag: str, apps: int) -> None:
        self.bin = ensure_pm2()
        self.tmp = tempfile.mkdtemp(prefix=f"apm-bench-pm2-{tag}-")
        self.env = dict(os.environ, PM2_HOME=os.path.join(self.tmp, "home"))
        self.names = [f"w{i}" for i in range(1, apps + 1)]
        self.eco = os.path.join(self.tmp, "ecosystem.config.json")
        spec = {
            "apps": [
                {
                    "name": name,
                    "script": SLEEP,
                    "args": "100000",
                    "interpreter": "none",
                    "autorestart": True,
                    "restart_delay": 0,
                    "min_uptime": 0,
                    "max_restarts": 100000,
                }
                for name in self.names
            ]
        }
        with open(self.eco, "w") as f:
            json.dump(spec, f)
        self.pid: Optional[int] = None

    def argv(self, *args: str) -> List[str]:
        return [self.bin, *args]

    def cli(self, *args: str, timeout: float = 300.0) -> str:
        proc = subprocess.run(self.argv(*args), env=self.env, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise BenchError(f"pm2 {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()[-800:]}")
        return proc.stdout.decode()

    def start_daemon(self) -> int:
        self.cli("ping")  # spawns the God daemon
        pid_file = os.path.join(self.env["PM2_HOME"], "pm2.pid")
        wait_until(lambda: os.path.exists(pid_file), 30, 0.05, "pm2.pid")
        with open(pid_file) as f:
            self.pid = int(f.read().strip())
        return self.pid

    def start_apps(self, timeout: float = 300.0) -> None:
        if self.pid is None:
            self.start_daemon()
        if not self.names:
            return
        self.cli("start", self.eco, timeout=timeout)
        assert self.pid is not None
        pid = self.pid
        want = len(self.names)
        wait_until(lambda: len(running_sleep_children(pid)) >= want, timeout, 0.1, f"PM2's {want} apps")

    def close(self) -> None:
        try:
            if self.pid is not None or os.path.isdir(self.env["PM2_HOME"]):
                try:
                    subprocess.run(
                        self.argv("kill"),
                        env=self.env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        timeout=120,
                    )
                except subprocess.TimeoutExpired:
                    pass
            if self.pid is not None:
                kill_tree(self.pid, grace=5)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def close_all(things: Iterable[Any]) -> None:
    """close() each (reverse order of starting), logging but not stopping at failures."""
    for thing in reversed(list(things)):
        try:
            thing.close()
        except Exception as exc:  # keep cleaning up the others
            log(f"cleanup of {type(thing).__name__} failed: {exc}")
