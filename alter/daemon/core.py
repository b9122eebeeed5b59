"""The running daemon: wires the loop, the control server, the supervisor, logs and state.

`Daemon.start()` binds the control socket first (so a second daemon fails
fast), then restores the persisted workers and announces readiness;
`Daemon.run()` runs the loop until `apm exit daemon` or SIGTERM, which stop
every worker (keeping their desired state for the next start) before exiting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

from alter import __version__
from alter.config import options
from alter.daemon import sdnotify
from alter.daemon.config_handlers import register_config_commands
from alter.daemon.handlers import register_worker_commands
from alter.daemon.history import RestartHistory, register_history_command
from alter.daemon.log_handlers import register_log_commands
from alter.daemon.loop import EventLoop
from alter.daemon.proxy_glue import ProxyGlue
from alter.daemon.server import Commands, ControlServer, Request
from alter.daemon.state import DebouncedSaver, StateStore
from alter.daemon.web_handlers import register_web_commands
from alter.errors import ApmError
from alter.events import EventBus
from alter.linux import prctl
from alter.linux.spawn import LinuxOps
from alter.logs.alerts import LogAlerts
from alter.logs.pipeline import WorkerLog
from alter.logs.volume import LogVolume
from alter.paths import Paths
from alter.supervise.launch import daemon_id_for
from alter.supervise.supervisor import Supervisor

log = logging.getLogger("apm.daemon")

SHUTDOWN_GRACE = 120.0  # seconds: past this, a stuck shutdown exits anyway (workers die by PDEATHSIG)


class Daemon:
    """Owns every piece of daemon state; everything runs on `self.loop`."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.loop = EventLoop()
        self.bus = EventBus()
        self.commands = Commands()
        self.started_at = time.time()
        self.exit_code = 0
        self._shutting_down = False
        self.daemon_config: Dict[str, Any] = options.effective({}, options.DAEMON_OPTIONS)
        self.volume = LogVolume()
        self.alerts = LogAlerts()  # shared by every worker's log; WorkerLog publishes log.alert on the bus
        self.store = StateStore(paths.state_file)
        self.saver = DebouncedSaver(self.store, self.snapshot, self.loop.call_soon)
        self.daemon_id = daemon_id_for(paths.socket_name)
        self.ops: Optional[LinuxOps] = None
        self.supervisor: Optional[Supervisor] = None
        self.history: Optional[RestartHistory] = None  # per-worker lifecycle events (`history` command)
        self.proxy: Optional[ProxyGlue] = None
        self.server = ControlServer(self.loop, paths.socket_address, self.commands, before_reply=self.saver.flush)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._make_dirs()
        self.server.listen()  # raises when another daemon holds the socket name
        self._write_pid_file()
        if not prctl.become_subreaper():
            log.warning("could not become a child subreaper: daemonizing workers may escape `apm stop`")
        # LinuxOps must be created on the loop thread (PDEATHSIG follows the forking thread).
        self.ops = LinuxOps(self.daemon_id)
        self.ops.install(self.loop)
        self.supervisor = Supervisor(
            self.loop,
            self.ops,
            self._log_factory,
            bus=self.bus,
            daemon_id=self.daemon_id,
            on_change=self.saver.changed,
        )
        self.history = RestartHistory(self.loop, self.bus, self.supervisor)
        self.proxy = ProxyGlue(self)  # the reverse proxy; its processes start with the first `server` worker
        self._register_commands()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self._on_stop_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        state = self.store.load()
        self._restore(state)
        self.gui.autostart()  # gui_port != 0: listen (failures are logged, never fatal)
        log.info(
            "apm %s daemon started (pid %d, python %s, socket @%s)",
            __version__,
            os.getpid(),
            sys.version.split()[0],
            self.paths.socket_name,
        )
        sdnotify.notify("READY=1\nSTATUS=supervising")

    def run(self) -> int:
        try:
            self.loop.run()
        finally:
            self._cleanup()
        return self.exit_code

    def _make_dirs(self) -> None:
        mode = 0o755 if self.paths.system else 0o700
        for directory in (self.paths.state_dir, self.paths.log_dir):
            os.makedirs(directory, mode=mode, exist_ok=True)

    def _write_pid_file(self) -> None:
        tmp = self.paths.pid_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, self.paths.pid_file)

    def _restore(self, state: Dict[str, Any]) -> None:
        assert self.supervisor is not None
        volume = state.get("log_volume")
        if isinstance(volume, dict):
            try:
                self.volume.restore(volume)
            except (TypeError, ValueError) as exc:
                log.warning("ignoring unreadable log volume history: %s", exc)
        alerts = state.get("log_alerts")
        if isinstance(alerts, list):
            try:
                self.alerts.set_alerts(alerts)
            except ApmError as exc:
                log.warning("ignoring the saved log alerts: %s", exc)
        workers = state.get("workers")
        if isinstance(workers, dict):
            try:
                started = self.supervisor.restore(workers)
            except Exception:
                # Never lose the user's workers over a restore bug: keep the file, start empty.
                keep = f"{self.paths.state_file}.unrestorable-{int(time.time())}"
                try:
                    os.replace(self.paths.state_file, keep)
                except OSError:
                    pass
                log.exception("could not restore workers; kept the state as %s", keep)
                return
            if started:
                log.info("restored and started %d worker(s): %s", len(started), ", ".join(started))

    def snapshot(self) -> Dict[str, Any]:
        assert self.supervisor is not None
        return {
            "workers": self.supervisor.snapshot(),
            "log_volume": self.volume.snapshot(),
            "log_alerts": self.alerts.alerts(),
        }

    def _log_factory(self, name: str, config: Dict[str, Any]) -> WorkerLog:
        return WorkerLog(
            self.loop, name, config, self.daemon_config, self.paths, self.bus, alerts=self.alerts, volume=self.volume
        )

    # ------------------------------------------------------------------ commands

    def _register_commands(self) -> None:
        assert self.supervisor is not None
        self.commands.register("ping", self._ping, write=False)
        self.commands.register("version", self._version, write=False)
        self.commands.register("exit", self._exit, write=True)
        register_worker_commands(self.commands, self.supervisor)
        register_log_commands(self.commands, self)
        assert self.history is not None
        register_history_command(self.commands, self.history, self.supervisor)
        self.gui = register_web_commands(self.commands, self)  # the web GUI + `gui`/`token` commands
        register_config_commands(self.commands, self)

    def _ping(self, req: Request) -> None:
        req.reply({"pid": os.getpid(), "version": __version__, "uptime": round(time.time() - self.started_at, 3)})

    def _version(self, req: Request) -> None:
        req.reply({"version": __version__, "python": sys.version.split()[0], "pid": os.getpid()})

    def _exit(self, req: Request) -> None:
        def done(stopped: List[str]) -> None:
            req.reply({"stopped": stopped})
            self.server.flush_all()
            self.loop.stop()

        self.shutdown(done)

    # ------------------------------------------------------------------ shutdown

    def shutdown(self, on_done: Any) -> None:
        """Stop every worker (keeping desired state), then call on_done(stopped names)."""
        assert self.supervisor is not None
        if self._shutting_down:
            return
        self._shutting_down = True
        sdnotify.notify("STOPPING=1")
        log.info("shutting down: stopping every worker")
        names: List[str] = []
        finished = {"done": False}

        def finish() -> None:
            if finished["done"]:
                return
            finished["done"] = True
            on_done(names)

        with self.history.context("shutdown") if self.history is not None else contextlib.nullcontext():
            names.extend(self.supervisor.shutdown(finish))  # history: these stops say "shutdown"
        # A worker that refuses to die must not keep the daemon up forever.
        self.loop.call_later(SHUTDOWN_GRACE, finish)

    def _on_stop_signal(self, signum: int) -> None:
        log.info("received %s", signal.Signals(signum).name)
        if self._shutting_down:
            return
        self.shutdown(lambda names: self.loop.stop())

    def _cleanup(self) -> None:
        if getattr(self, "gui", None) is not None:
            self.gui.close()
        self.saver.flush()
        self.server.flush_all()
        self.server.close()
        if self.supervisor is not None:
            self.supervisor.close()
        if self.proxy is not None:
            self.proxy.close()
        if self.ops is not None:
            self.ops.close()
        try:
            with open(self.paths.pid_file) as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(self.paths.pid_file)
        except OSError:
            pass
        log.info("daemon stopped")
