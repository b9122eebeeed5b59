"""Apply loaded config files to the running supervisor: load, reload (diff), unload, the daemon block.

    reloader = Reloader(supervisor, daemon_config, boot_file, bus)
    result = read_config(path, caller)                  # config_access: a LoadResult (apm.conf or JSON)
    plan = reloader.plan(result, root, caller)          # raises ConfigError (all errors) / PermissionDenied
    reloader.apply(plan, on_done=lambda summary: ...)   # removes, then changes and creates

Ownership.  A worker loaded from a file carries
`origin {"kind": "file", "file", "line", "root"}`: `file` holds its block,
`root` is the file that was loaded (`apm load <root>`; includes share it).
Reloading root R owns every worker whose origin root is R or whose origin
file is one of the files R reads now.  Owned workers absent from R are
removed; a name in R that belongs to a worker of another origin (`apm run`,
another root) is skipped with a warning, never taken over.

Comparison (`diff.differing_keys`) is on effective values, after the daemon's
own adjustments: an unset `path` becomes the directory of the worker's file
(recorded as `origin.implicit` so saveconf does not write it back), and a
caller who may not choose the user (a non-root member of the apm group on a
root daemon) gets `user` forced to themselves, exactly as `apm run` does.

Files are read by `config_access.read_config`, only after checking that the
caller could read them.  The uid of a non-root caller is kept as
`origin.owner`; `caller_for(root)` gives auto-reloads the same identity.
"""

from __future__ import annotations

import logging
import os
import pwd
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from alter.config import diff, options
from alter.config.loader import LoadResult, WorkerDef
from alter.daemon.config_access import DAEMON, Caller, config_error, may_access, may_write
from alter.errors import ApmError, ConfigError, NotFound, PermissionDenied
from alter.events import EventBus

log = logging.getLogger("apm.config")


# ---------------------------------------------------------------------------------------------- plans


@dataclass
class Entry:
    name: str
    config: Dict[str, Any]
    origin: Dict[str, Any]


@dataclass
class Plan:
    root: str
    create: List[Entry] = field(default_factory=list)
    change: List[Entry] = field(default_factory=list)
    unchanged: List[Entry] = field(default_factory=list)
    remove: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    changed_keys: Dict[str, List[str]] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)
    dirs: List[str] = field(default_factory=list)
    daemon: Optional[Dict[str, Any]] = None  # the boot file's daemon block (None: not the boot file)
    owner: Optional[int] = None

    def summary(self) -> Dict[str, Any]:
        return {
            "file": self.root,
            "created": [e.name for e in self.create],
            "changed": [e.name for e in self.change],
            "removed": list(self.remove),
            "unchanged": [e.name for e in self.unchanged],
            "skipped": list(self.skipped),
            "changed_keys": dict(self.changed_keys),
            "warnings": list(self.warnings),
        }


def origin_root(origin: Any) -> Optional[str]:
    if not isinstance(origin, dict) or origin.get("kind") != "file":
        return None
    root = origin.get("root") or origin.get("file")
    return str(root) if root else None


def _notes(wd: WorkerDef) -> Dict[str, Any]:
    notes: Dict[str, Any] = {}
    if wd.comments:
        notes["comments"] = list(wd.comments)
    if wd.key_comments:
        notes["keys"] = {k: list(v) for k, v in wd.key_comments.items()}
    if wd.trail_comments:
        notes["trail"] = dict(wd.trail_comments)
    return notes


class Reloader:
    """Turns LoadResults into supervisor calls; keeps `daemon_config` current (see module doc)."""

    def __init__(
        self,
        supervisor: Any,
        daemon_config: Dict[str, Any],
        boot_file: str,
        bus: Optional[EventBus] = None,
    ) -> None:
        self.sup = supervisor
        self.daemon_config = daemon_config
        self.boot_file = os.path.abspath(boot_file)
        self.bus = bus if bus is not None else supervisor.bus
        self.known: Dict[str, Plan] = {}  # root -> its last applied plan (files, dirs, owner)
        self.on_files_changed: Optional[Callable[[], None]] = None  # the auto-reload watcher refreshes here

    # ------------------------------------------------------------------ ownership

    def owns(self, worker: Any, root: str, files: Any = ()) -> bool:
        if worker.removing:
            return False
        origin = worker.origin
        if origin_root(origin) is None:
            return False
        return origin_root(origin) == root or origin.get("file") in files

    def owned(self, root: str, files: Any = ()) -> Dict[str, Any]:
        return {w.name: w for w in list(self.sup.workers.values()) if self.owns(w, root, files)}

    def roots(self) -> List[str]:
        """Every loaded root file: the boot file (when it exists) and the roots of file-origin workers."""
        found: Dict[str, None] = {}
        if os.path.exists(self.boot_file):
            found[self.boot_file] = None
        for root in self.known:
            found[root] = None
        for worker in list(self.sup.workers.values()):
            loaded = origin_root(worker.origin)
            if loaded:
                found[loaded] = None
        return list(found)

    def owner_of(self, root: str) -> Optional[int]:
        plan = self.known.get(root)
        if plan is not None:
            return plan.owner
        for worker in self.sup.workers.values():
            if origin_root(worker.origin) == root and isinstance(worker.origin.get("owner"), int):
                return int(worker.origin["owner"])
        return None

    def caller_for(self, root: str) -> Caller:
        owner = self.owner_of(root)
        return DAEMON if owner is None else Caller.from_uid(owner)

    # ------------------------------------------------------------------ planning

    def prepare(self, result: LoadResult, root: str, caller: Caller) -> List[Entry]:
        """The workers of `result` as the daemon will run them (path resolved, user guarded)."""
        entries: List[Entry] = []
        for wd in result.workers:
            config = dict(wd.config)
            file = str(wd.origin.get("file") or root)
            origin: Dict[str, Any] = {"kind": "file", "file": file, "line": wd.origin.get("line"), "root": root}
            if not config.get("path") and os.path.isabs(file):
                config["path"] = os.path.dirname(file)
                origin["implicit"] = ["path"]
            if not caller.trusted:
                origin["owner"] = caller.uid
                self._guard(config, caller, result.warnings)
            notes = _notes(wd)
            if notes:
                origin["notes"] = notes
            entries.append(Entry(wd.name, config, origin))
        return entries

    def _guard(self, config: Dict[str, Any], caller: Caller, warnings: List[str]) -> None:
        """What `apm run` enforces for a non-root caller, for a worker from their file."""
        name = config.get("name")
        if os.geteuid() == 0:
            if config.get("user") not in (None, caller.username):
                warnings.append(
                    f"worker {name}: runs as {caller.username}, not {config['user']} (only root chooses the user)"
                )
            config["user"] = caller.username
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            if config.get("user") not in (None, me):
                raise PermissionDenied(
                    f"worker {name}: this daemon runs as {me}; it cannot run workers as {config.get('user')!r}",
                    hint="remove `user` from the worker, or use your own daemon",
                )
        base = str(config.get("path") or "/")
        env_file = config.get("env_file")
        if env_file:
            path = env_file if os.path.isabs(env_file) else os.path.join(base, env_file)
            if not may_access(path, caller):
                raise PermissionDenied(
                    f"worker {name}: env_file {env_file!r}: user {caller.username} may not read it",
                    hint="point env_file at a file you can read",
                )
        for key in ("log", "err_log"):
            target = config.get(key)
            if target:
                path = target if os.path.isabs(target) else os.path.join(base, target)
                if not may_write(path, caller):
                    raise PermissionDenied(
                        f"worker {name}: {key} {target!r}: user {caller.username} may not write there",
                        hint="choose a log path you can write, or leave the default",
                    )

    def plan(
        self,
        result: LoadResult,
        root: str,
        caller: Optional[Caller] = None,
        only: Optional[str] = None,
    ) -> Plan:
        """What reloading `root` (already read into `result`) would do.  ConfigError when it has errors."""
        caller = caller or DAEMON
        root = os.path.abspath(root)
        if result.errors:
            raise config_error(result)
        plan = Plan(root=root, files=list(result.files), dirs=list(result.dirs), warnings=list(result.warnings))
        plan.owner = None if caller.trusted else caller.uid
        entries = self.prepare(result, root, caller)
        plan.warnings = list(result.warnings)  # _guard adds some
        if root == self.boot_file:
            if only is None:
                plan.daemon = dict(result.daemon)
        elif result.daemon:
            plan.warnings.append(
                f"{root}: the daemon {{ }} block is ignored: daemon settings come from {self.boot_file}"
            )
        if only is not None:
            entries = [e for e in entries if e.name == only]
            if not entries:
                raise NotFound(
                    f"worker {only!r} is no longer in {root}",
                    hint=f"`apm reload {root}` removes it, or `apm remove {only}`",
                )
        owned = self.owned(root, result.files)
        for entry in entries:
            worker = self.sup.workers.get(entry.name)
            if worker is None:
                plan.create.append(entry)
            elif entry.name not in owned:
                plan.skipped.append(entry.name)
                plan.warnings.append(self._conflict(entry, worker))
            else:
                keys = diff.differing_keys(worker.config, entry.config)
                if keys:
                    plan.change.append(entry)
                    plan.changed_keys[entry.name] = keys
                else:
                    plan.unchanged.append(entry)
        if only is None:
            names = {e.name for e in entries}
            plan.remove = [name for name in owned if name not in names]
        return plan

    @staticmethod
    def _conflict(entry: Entry, worker: Any) -> str:
        where = f"{entry.origin['file']}:{entry.origin.get('line')}"
        kind = worker.origin.get("kind") if isinstance(worker.origin, dict) else None
        if worker.removing:
            return f"{where}: worker {entry.name} is being removed; skipped (reload again in a moment)"
        came = {"cli": "apm run", "gui": "the GUI", "copy": "apm copy"}.get(str(kind), str(kind))
        if kind == "file":
            came = f"{worker.origin.get('root') or worker.origin.get('file')}"
        return (
            f"{where}: a worker named {entry.name} already exists (from {came}); skipped — "
            f"rename one of them, or `apm remove {entry.name}` and reload"
        )

    # ------------------------------------------------------------------ applying

    def apply(
        self,
        plan: Plan,
        force: bool = False,
        on_done: Optional[Callable[[Dict[str, Any]], None]] = None,
        why: str = "reload",
    ) -> None:
        """Stop removed workers; once they are gone, update changed ones and start new ones.

        Logs what changed (`why` names the cause: reload, boot, auto_reload...); a boot always logs.
        """
        summary = plan.summary()
        self._remember(plan)
        if plan.daemon is not None:
            changed = self.apply_daemon(plan.daemon)
            if changed:
                summary["daemon_changed"] = changed
        pending = [len(plan.remove)]

        def removed() -> None:
            pending[0] -= 1
            if pending[0] == 0:
                self._apply_rest(plan, force, summary, on_done, why)

        if not plan.remove:
            self._apply_rest(plan, force, summary, on_done, why)
            return
        for name in plan.remove:
            try:
                self.sup.remove(name, removed)
            except ApmError as exc:
                summary["warnings"].append(f"worker {name}: not removed: {exc.message}")
                removed()

    def _apply_rest(
        self,
        plan: Plan,
        force: bool,
        summary: Dict[str, Any],
        on_done: Optional[Callable[[Dict[str, Any]], None]],
        why: str,
    ) -> None:
        try:
            self._apply_changes(plan, force, summary, why)
        except Exception as exc:  # never leave a caller (or the auto-reload queue) waiting forever
            log.exception("%s %s: applying the changes failed", why, plan.root)
            summary["warnings"].append(f"internal error while applying: {type(exc).__name__}: {exc} (see apm.log)")
        if on_done is not None:
            on_done(summary)

    def _apply_changes(self, plan: Plan, force: bool, summary: Dict[str, Any], why: str) -> None:
        warnings: List[str] = summary["warnings"]
        for entry in plan.change:
            self._guarded(warnings, entry.name, self._change, entry)
        for entry in plan.unchanged:
            self._set_origin(entry)
            if force:
                self._guarded(warnings, entry.name, self._force, entry)
        created: List[str] = []
        for entry in plan.create:
            try:
                self.sup.add(entry.config, entry.origin, start=False)
            except ApmError as exc:
                warnings.append(f"worker {entry.name}: not created: {exc.message}")
                summary["created"].remove(entry.name)
                summary["skipped"].append(entry.name)
                continue
            worker = self.sup.workers[entry.name]
            worker.desired = "running"
            created.append(entry.name)
        self._start(created, warnings)
        if summary["created"] or summary["changed"] or summary["removed"] or force or why == "boot":
            log.info("%s %s: %s", why, plan.root, describe(summary))
        for warning in warnings:
            log.warning("%s %s: %s", why, plan.root, warning)

    @staticmethod
    def _guarded(warnings: List[str], name: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except ApmError as exc:
            warnings.append(f"worker {name}: {exc.message}")

    def _change(self, entry: Entry) -> None:
        worker = self.sup.workers[entry.name]
        changes: Dict[str, Any] = {k: entry.config.get(k) for k in set(worker.config) | set(entry.config)}
        changes.pop("name", None)
        self.sup.update(entry.name, changes, restart=True)
        self._set_origin(entry)
        worker = self.sup.workers[entry.name]
        idle = all(i.idle for i in worker.wanted)
        if worker.desired == "running" and worker.enabled and idle:
            self.sup.start(entry.name)  # it had crashed out (errored): the new config gets a fresh start

    def _force(self, entry: Entry) -> None:
        worker = self.sup.workers[entry.name]
        if worker.desired == "running" and worker.enabled:
            self.sup.restart(entry.name)

    def _set_origin(self, entry: Entry) -> None:
        worker = self.sup.workers.get(entry.name)
        if worker is not None and worker.origin != entry.origin:
            self.sup.set_origin(entry.name, entry.origin)

    def _start(self, names: List[str], warnings: List[str]) -> None:
        wanted = [n for n in names if self.sup.workers[n].enabled]
        if not wanted:
            return
        try:
            self.sup.start_all(wanted)
        except ConfigError as exc:
            warnings.append(f"{exc.message}; started in file order")
            for name in wanted:
                self._guarded(warnings, name, self.sup.start, name)

    def _remember(self, plan: Plan) -> None:
        self.known[plan.root] = plan
        self.files_changed()

    def files_changed(self) -> None:
        if self.on_files_changed is not None:
            try:
                self.on_files_changed()
            except Exception:
                log.exception("refreshing the config watches failed")

    # ------------------------------------------------------------------ load / unload

    def load(self, plan: Plan) -> Dict[str, Any]:
        """`apm load`: create what is missing, start owned workers that are stopped, touch nothing else."""
        self._remember(plan)
        summary: Dict[str, Any] = {"file": plan.root, "created": [], "started": [], "skipped": list(plan.skipped)}
        warnings: List[str] = list(plan.warnings)
        if plan.daemon is not None:
            changed = self.apply_daemon(plan.daemon)
            if changed:
                summary["daemon_changed"] = changed
        differs = {e.name for e in plan.change}
        for entry in plan.change + plan.unchanged:
            worker = self.sup.workers[entry.name]
            if entry.name in differs:
                warnings.append(f"worker {entry.name} differs from {plan.root}; `apm reload {plan.root}` applies it")
            if worker.desired != "running" and worker.enabled:
                self._guarded(warnings, entry.name, self.sup.start, entry.name)
                summary["started"].append(entry.name)
            else:
                summary["skipped"].append(entry.name)
        created: List[str] = []
        for entry in plan.create:
            try:
                self.sup.add(entry.config, entry.origin, start=False)
            except ApmError as exc:
                warnings.append(f"worker {entry.name}: not created: {exc.message}")
                summary["skipped"].append(entry.name)
                continue
            self.sup.workers[entry.name].desired = "running"
            created.append(entry.name)
        self._start(created, warnings)
        summary["created"] = created
        summary["warnings"] = warnings
        if created or summary["started"]:
            log.info("loaded %s: created %s; started %s", plan.root, _names(created), _names(summary["started"]))
        return summary

    def unload(self, path: str, on_done: Callable[[List[str]], None]) -> List[str]:
        """Stop and remove every worker loaded from `path` (a root, or one included file)."""
        path = os.path.abspath(path)
        names = [
            w.name
            for w in list(self.sup.workers.values())
            if not w.removing and (origin_root(w.origin) == path or w.origin.get("file") == path)
        ]
        self.known.pop(path, None)
        pending = [len(names)]

        def one() -> None:
            pending[0] -= 1
            if pending[0] == 0:
                self.files_changed()
                on_done(names)

        if not names:
            self.files_changed()
            on_done(names)
            return names
        for name in names:
            self.sup.remove(name, one)
        log.info("unloaded %s: removing %s", path, _names(names))
        return names

    # ------------------------------------------------------------------ daemon block

    def apply_daemon(self, block: Dict[str, Any]) -> List[str]:
        """Make the boot file's daemon block current; returns the option names that changed."""
        new = options.effective(dict(block), options.DAEMON_OPTIONS)
        changed = [k for k in options.DAEMON_OPTIONS if self.daemon_config.get(k) != new.get(k)]
        if not changed:
            return []
        for key in options.DAEMON_OPTIONS:
            self.daemon_config[key] = new.get(key)
        for worker in list(self.sup.workers.values()):
            setter = getattr(worker.log, "set_daemon_config", None)
            if callable(setter):
                try:
                    setter(self.daemon_config)
                except Exception:
                    log.exception("applying daemon log settings to %s failed", worker.name)
        log.info("daemon settings changed: %s", ", ".join(changed))
        self.bus.publish(
            "daemon.config",
            {"changed": changed, "config": options.mask_secrets(dict(self.daemon_config), "daemon")},
        )
        self.files_changed()
        return changed


def _names(names: List[str]) -> str:
    return ", ".join(names) if names else "none"


def describe(summary: Dict[str, Any]) -> str:
    parts = []
    for key in ("created", "changed", "removed", "unchanged", "skipped"):
        names = summary.get(key) or []
        if names:
            parts.append(f"{key} {', '.join(names)}")
    return "; ".join(parts) or "no workers"
