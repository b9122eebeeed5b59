"""Control-socket handlers of the config lifecycle, boot at daemon start, and auto-reload.

    register_config_commands(commands, daemon)   # from Daemon._register_commands

Commands (docs/protocol.md): `boot`, `load`, `unload`, `reload`, `saveconf`
and `plan` (what loading a file would change: `apm check`).  Paths on the
wire are absolute; the daemon reads the files, after checking that the
caller could read them (alter.daemon.config_access).

At daemon start (first loop iteration, so after the persisted workers were
restored) the boot file (`paths.config_file`) is reconciled like a reload:
its new workers start, changed ones restart, workers that came from it and
are gone from it stop; workers of other origins are never touched.  A broken
boot file is logged, error by error, and changes nothing.

Auto-reload: with `daemon { auto_reload true; }` (in the boot file) every
loaded root file, its includes and its include directories are watched
(inotify, debounced); a worker with `watch_conf true;` has its own file
watched and only that worker reloads.  Changes go through the same reload as
`apm reload`; a broken edit logs its errors and changes nothing.  SIGHUP
reloads every loaded file.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any, Dict, List, Optional, Set, Tuple

from alter.config import options
from alter.config.loader import LoadResult, WorkerDef
from alter.daemon.config_access import DAEMON, Caller, read_config
from alter.daemon.reloader import Plan, Reloader, origin_root
from alter.daemon.saveconf import save_all, save_one
from alter.errors import ApmError, ConfigError, UsageError

log = logging.getLogger("apm.config")

_MISSING = object()


def _path_arg(req: Any, key: str = "file", required: bool = True) -> Optional[str]:
    value = req.args.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise UsageError(f"{req.cmd}: argument {key!r} is required", hint="see docs/protocol.md")
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"{req.cmd}: argument {key!r} must be a non-empty string", hint="see docs/protocol.md")
    if not os.path.isabs(value) or "\0" in value:
        raise UsageError(
            f"{req.cmd}: {key} must be an absolute path, got {value!r}", hint="the CLI sends absolute paths"
        )
    return os.path.normpath(value)


def _str_arg(req: Any, key: str) -> Optional[str]:
    value = req.args.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"{req.cmd}: argument {key!r} must be a non-empty string", hint="see docs/protocol.md")
    return value


def _bool_arg(req: Any, key: str) -> bool:
    value = req.args.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise UsageError(f"{req.cmd}: argument {key!r} must be true or false", hint="see docs/protocol.md")
    return value


class ConfigService:
    """The daemon's config lifecycle: commands, boot, watches (all on the loop thread)."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.sup = daemon.supervisor
        self.reloader = Reloader(self.sup, daemon.daemon_config, daemon.paths.config_file, daemon.bus)
        self.reloader.on_files_changed = self.refresh_watches
        self.watcher: Any = None
        self.targets: Dict[str, Set[Tuple[str, str]]] = {}  # watched path -> {("root", R) | ("worker", name)}
        self.learned: Dict[str, Tuple[List[str], List[str]]] = {}  # root -> (files, dirs) read to watch it
        self._busy = False
        self._queue: List[Tuple[str, Optional[str], str]] = []  # (root, only, why) auto-reloads waiting their turn
        self._watch_conf: Set[str] = set()
        self.sup.bus.subscribe("worker.", self._worker_event)

    # ------------------------------------------------------------------ startup

    def startup(self) -> None:
        """First loop iteration: SIGHUP reloads, the boot file is reconciled, watches start."""
        try:
            self.daemon.loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        except (ValueError, OSError):  # not the main thread (tests)
            pass
        try:
            self.boot(lambda summary: None)
        except ApmError:
            pass  # logged by boot()
        except Exception:
            log.exception("boot: loading %s failed", self.reloader.boot_file)
        self.refresh_watches()

    def boot(self, on_done: Any) -> Optional[Dict[str, Any]]:
        """Reconcile the boot file (see module doc).  Returns None when it does not exist."""
        path = self.reloader.boot_file
        if not os.path.exists(path):
            log.info("boot: no config file at %s", path)
            return None
        result = read_config(path, DAEMON)
        if result.errors:
            log.error("boot: %s has %d error(s); nothing was changed:", path, len(result.errors))
            for err in result.errors:
                log.error("  %s", err.message)
        plan = self.reloader.plan(result, path, DAEMON)
        self.reloader.apply(plan, on_done=on_done, why="boot")
        return {}

    def _on_hup(self, signum: int) -> None:
        roots = self.reloader.roots()
        log.info("SIGHUP: reloading %s", ", ".join(roots) or "nothing (no config files loaded)")
        for root in roots:
            self.auto_reload(root, None, "SIGHUP")

    # ------------------------------------------------------------------ commands

    def cmd_boot(self, req: Any) -> None:
        path = self.reloader.boot_file

        def done(summary: Dict[str, Any]) -> None:
            summary["exists"] = True
            req.reply(summary)

        if self.boot(done) is None:
            req.reply({"file": path, "exists": False})

    def cmd_load(self, req: Any) -> None:
        path = str(_path_arg(req))
        caller = Caller.from_peer(req.peer)
        plan = self.reloader.plan(read_config(path, caller), path, caller)
        req.reply(self.reloader.load(plan))

    def cmd_unload(self, req: Any) -> None:
        path = str(_path_arg(req))
        self.reloader.unload(path, lambda names: req.reply({"file": path, "removed": names}))

    def cmd_reload(self, req: Any) -> None:
        path = _path_arg(req, required=False)
        name = _str_arg(req, "name")
        force = _bool_arg(req, "force")
        if (path is None) == (name is None):
            raise UsageError("reload: give either 'file' or 'name'", hint="see docs/protocol.md")
        if name is not None:
            worker = self.sup.get(name)
            root = origin_root(worker.origin)
            if root is None:
                kind = worker.origin.get("kind") if isinstance(worker.origin, dict) else None
                raise UsageError(
                    f"worker {name!r} did not come from a config file (origin: {kind or 'unknown'})",
                    hint=f"give it one with `apm saveconf {name} <file>`, or change it with `apm update {name}`",
                )
            path = root
        caller = Caller.from_peer(req.peer)
        plan = self.reloader.plan(read_config(str(path), caller), str(path), caller, only=name)
        self.reloader.apply(plan, force=force, on_done=req.reply)

    def cmd_saveconf(self, req: Any) -> None:
        name = _str_arg(req, "name")
        path = _path_arg(req, required=False)
        if (name is None) != (path is None):
            raise UsageError(
                "saveconf: give both 'name' and 'file', or neither", hint="apm saveconf, or apm saveconf <name> <file>"
            )
        caller = Caller.from_peer(req.peer)
        if name is None:
            req.reply(save_all(self.reloader, caller))
        else:
            req.reply(save_one(self.reloader, name, str(path), caller))

    def cmd_plan(self, req: Any) -> None:
        """What loading/reloading `file` with these (client-parsed) workers would do; nothing is applied."""
        path = str(_path_arg(req))
        workers = req.args.get("workers")
        if not isinstance(workers, list):
            raise UsageError("plan: argument 'workers' must be a list", hint="see docs/protocol.md")
        result = LoadResult(files=[path])
        for item in workers:
            if not isinstance(item, dict) or not isinstance(item.get("config"), dict):
                raise UsageError("plan: each worker is {config, origin}", hint="see docs/protocol.md")
            try:
                config, _ = options.coerce_block("worker", item["config"])
            except ConfigError as exc:
                raise UsageError(f"plan: {exc.message}", hint="the CLI validates workers before asking") from None
            origin: Dict[str, Any] = item["origin"] if isinstance(item.get("origin"), dict) else {}
            given = origin.get("file")
            file = given if isinstance(given, str) and os.path.isabs(given) else path
            if file not in result.files:
                result.files.append(file)
            result.workers.append(WorkerDef(config, {"file": file, "line": origin.get("line")}))
        daemon_block = req.args.get("daemon")
        if isinstance(daemon_block, dict):
            result.daemon = daemon_block
        plan = self.reloader.plan(result, path, Caller.from_peer(req.peer))
        summary = plan.summary()
        if plan.daemon is not None:
            new = options.effective(plan.daemon, options.DAEMON_OPTIONS)
            summary["daemon_changed"] = [
                k for k in options.DAEMON_OPTIONS if new.get(k) != self.reloader.daemon_config.get(k)
            ]
        req.reply(summary)

    # ------------------------------------------------------------------ auto-reload

    def auto_reload(self, root: str, only: Optional[str], why: str) -> None:
        """Reload `root` (or one worker of it) as its loader would; one at a time."""
        if self._busy:
            if (root, only, why) not in self._queue:
                self._queue.append((root, only, why))
            return
        self._busy = True
        try:
            result = read_config(root, self.reloader.caller_for(root))
            if result.errors:
                log.error("%s: %s has %d error(s); nothing was changed:", why, root, len(result.errors))
                for err in result.errors:
                    log.error("  %s", err.message)
                self._next()
                return
            plan = self.reloader.plan(result, root, self.reloader.caller_for(root), only=only)
        except ApmError as exc:
            log.error("%s: reloading %s failed: %s", why, root, exc.message)
            self._next()
            return
        except Exception:
            log.exception("%s: reloading %s failed", why, root)
            self._next()
            return
        self.reloader.apply(plan, on_done=lambda summary: self._next(), why=why)

    def _next(self) -> None:
        self._busy = False
        if self._queue:
            root, only, why = self._queue.pop(0)
            self.auto_reload(root, only, why)

    def _worker_event(self, kind: str, data: Dict[str, Any]) -> None:
        if kind not in ("worker.added", "worker.removed", "worker.updated", "worker.renamed"):
            return
        watching = {w.name for w in self.sup.workers.values() if w.eff.get("watch_conf")}
        if watching != self._watch_conf or (kind != "worker.updated" and data.get("worker") in watching):
            self.refresh_watches()

    def refresh_watches(self) -> None:
        """Watch what auto_reload / watch_conf ask for right now."""
        targets: Dict[str, Set[Tuple[str, str]]] = {}
        dirs: Set[str] = set()
        if self.reloader.daemon_config.get("auto_reload"):
            for root in self.reloader.roots():
                files, folders = self._files_of(root)
                for path in {root, *files, *folders}:
                    targets.setdefault(path, set()).add(("root", root))
                dirs.update(folders)
        self._watch_conf = set()
        for worker in list(self.sup.workers.values()):
            file = worker.origin.get("file") if isinstance(worker.origin, dict) else None
            if worker.eff.get("watch_conf") and origin_root(worker.origin) and file and not worker.removing:
                self._watch_conf.add(worker.name)
                targets.setdefault(str(file), set()).add(("worker", worker.name))
        self.targets = targets
        if not targets:
            if self.watcher is not None:
                self.watcher.close()
                self.watcher = None
            return
        if self.watcher is None:
            from alter.linux.inotify import FileWatcher

            self.watcher = FileWatcher(self.daemon.loop, self._changed)
        files = [p for p in targets if p not in dirs]
        try:
            self.watcher.set_paths(files, dirs)
        except OSError as exc:
            log.error("cannot watch config files (auto_reload / watch_conf): %s", exc)

    def _files_of(self, root: str) -> Tuple[List[str], List[str]]:
        plan: Optional[Plan] = self.reloader.known.get(root)
        if plan is not None:
            return plan.files, plan.dirs
        if root not in self.learned:
            try:
                result = read_config(root, self.reloader.caller_for(root))
                self.learned[root] = (list(result.files), list(result.dirs))
            except ApmError:
                self.learned[root] = ([root], [])
        return self.learned[root]

    def _changed(self, paths: Set[str]) -> None:
        roots: List[str] = []
        workers: List[str] = []
        for path in sorted(paths):
            for kind, what in sorted(self.targets.get(path, ())):
                if kind == "root" and what not in roots:
                    roots.append(what)
                elif kind == "worker" and what not in workers:
                    workers.append(what)
        for root in roots:
            self.learned.pop(root, None)
            self.auto_reload(root, None, "auto_reload")
        for name in workers:
            worker = self.sup.workers.get(name)
            loaded = origin_root(worker.origin) if worker is not None else None
            if loaded and loaded not in roots:
                self.auto_reload(loaded, name, "watch_conf")

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None


def register_config_commands(commands: Any, daemon: Any) -> ConfigService:
    """Register boot, load, unload, reload, saveconf and plan; reconcile the boot file once the loop runs."""
    service = ConfigService(daemon)
    commands.register("boot", service.cmd_boot)
    commands.register("load", service.cmd_load)
    commands.register("unload", service.cmd_unload)
    commands.register("reload", service.cmd_reload)
    commands.register("saveconf", service.cmd_saveconf)
    commands.register("plan", service.cmd_plan)
    daemon.loop.call_soon(service.startup)
    return service
