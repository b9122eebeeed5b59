"""Control-socket handlers for every worker command of docs/protocol.md.

    register_worker_commands(commands, supervisor)

Each handler validates `request.args` strictly (wrong types -> UsageError,
never a crash), coerces configs with the option table (never trusting the
client), calls the Supervisor and answers through the Request.  Commands that
finish later (`stop`, `remove`, `stopall`, `wait`, and `run`/`start`/`restart`/
`update` with `wait: true`) reply from a callback and cancel on disconnect.

Instance numbers on the wire are 1-based (`api#2`, `env` `index: 2`).
"""

from __future__ import annotations

import os
import signal as _signal
from typing import Any, Callable, Dict, List, Optional

from alter.config import options
from alter.errors import ApmError, PermissionDenied, StartFailed, UsageError
from alter.supervise.supervisor import Supervisor

_MISSING = object()
DEFAULT_WAIT_MS = 30_000


# ---------------------------------------------------------------------------------------------- args


def _arg(req: Any, key: str, kind: type, required: bool = True, default: Any = None) -> Any:
    value = req.args.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise UsageError(f"{req.cmd}: argument {key!r} is required", hint="see docs/protocol.md")
        return default
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is str:
        ok = isinstance(value, str) and value != ""
    else:
        ok = isinstance(value, kind)
    if not ok:
        want = {str: "a non-empty string", bool: "true or false", int: "a whole number", dict: "an object"}.get(
            kind, kind.__name__
        )
        raise UsageError(
            f"{req.cmd}: argument {key!r} must be {want}, got {json_type(value)}", hint="see docs/protocol.md"
        )
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}" if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def parse_signal(value: Any) -> int:
    """`SIGHUP`, `hup`, `1` or 1 -> 1; UsageError otherwise."""
    if isinstance(value, bool):
        raise UsageError(f"signal must be a name like SIGHUP or a number, got {json_type(value)}")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        valid = {int(s) for s in _signal.Signals}
        if number in valid or (_signal.SIGRTMIN <= number <= _signal.SIGRTMAX):
            return number
        raise UsageError(f"signal number {number} does not exist", hint="use a name like SIGHUP, SIGUSR1 or SIGTERM")
    if isinstance(value, str) and value.strip():
        name = value.strip().upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            return int(_signal.Signals[name])
        except KeyError:
            pass
        for base, sign in (("SIGRTMIN", "+"), ("SIGRTMAX", "-")):  # SIGRTMIN+N / SIGRTMAX-N (docs/cli.md)
            head, sep, offset = name.partition(sign)
            if head == base and sep and offset.isdigit():
                number = int(_signal.SIGRTMIN) + int(offset) if sign == "+" else int(_signal.SIGRTMAX) - int(offset)
                if _signal.SIGRTMIN <= number <= _signal.SIGRTMAX:
                    return number
    raise UsageError(
        f"unknown signal {value!r}", hint="use a name like SIGHUP, SIGUSR1, SIGUSR2 or SIGTERM, or a number"
    )


# ---------------------------------------------------------------------------------------------- permissions


def _peer_groups(peer: Any) -> List[int]:
    try:
        from alter.daemon.server import peer_groups

        return [peer.gid, *peer_groups(peer.pid)]
    except Exception:
        return [peer.gid]


def _peer_may(path: str, peer: Any, want: int) -> bool:
    """Mode-bit check for the caller (the daemon itself may be root): want is 4 (read) or 2 (write)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if peer.uid == 0:
        return True
    if st.st_uid == peer.uid:
        return bool(st.st_mode & (want << 6))
    if st.st_gid in _peer_groups(peer):
        return bool(st.st_mode & (want << 3))
    return bool(st.st_mode & want)


def _guard_config(config: Dict[str, Any], peer: Any, supervisor: Supervisor, base: str) -> None:
    """A non-root caller may not use the daemon's privileges: run as them, read/write only what they can."""
    if peer.is_root or peer.uid == os.geteuid():
        return
    if supervisor.ops.is_root:
        config["user"] = peer.username
    elif config.get("user") not in (None, supervisor.ops.current_user().name):
        raise PermissionDenied(
            f"this daemon runs as {supervisor.ops.current_user().name}; it cannot run workers as "
            f"{config.get('user')!r}",
            hint="use your own daemon, or ask root",
        )
    env_file = config.get("env_file")
    if env_file:
        path = env_file if os.path.isabs(env_file) else os.path.join(config.get("path") or base, env_file)
        if not _peer_may(path, peer, 4):
            raise PermissionDenied(
                f"env_file {env_file!r}: user {peer.username} may not read it",
                hint="point env_file at a file you can read",
            )
    for key in ("log", "err_log"):
        target = config.get(key)
        if target:
            path = target if os.path.isabs(target) else os.path.join(config.get("path") or base, target)
            probe = path if os.path.exists(path) else os.path.dirname(path)
            if not _peer_may(probe, peer, 2):
                raise PermissionDenied(
                    f"{key} {target!r}: user {peer.username} may not write there",
                    hint="choose a log path you can write, or leave the default",
                )


# ---------------------------------------------------------------------------------------------- helpers


def _start_failed(name: str, detail: Dict[str, Any]) -> StartFailed:
    what = detail.get("message") or detail.get("error") or "died during its startup grace"
    if detail.get("exit_code") is not None:
        status = f"exit code {detail['exit_code']}"
    elif detail.get("signal"):
        status = f"killed by {detail['signal']}"
    else:
        status = detail.get("error") or "did not start"
    hints = detail.get("hints") or []
    hint = hints[0] if hints else f"see its output: apm log {name}"
    return StartFailed(f"worker {name!r} failed to start ({status}): {what}", hint=hint, detail=detail)


def _waiter(req: Any, supervisor: Supervisor, name: Callable[[], str]) -> Callable[[Optional[Dict[str, Any]]], None]:
    """on_ready for run/start/restart/update with wait: reply the status or a StartFailed."""
    unsubscribe = _progress(req, supervisor, name)

    def on_ready(detail: Optional[Dict[str, Any]]) -> None:
        unsubscribe()
        if req.done:
            return
        if detail is not None:
            req.fail(_start_failed(name(), detail))
            return
        try:
            req.reply(supervisor.status(name()))
        except ApmError as exc:
            req.fail(exc)

    req.on_close(unsubscribe)
    return on_ready


def _progress(req: Any, supervisor: Supervisor, name: Callable[[], str]) -> Callable[[], None]:
    """Stream `progress` events about the worker's instances while a request waits."""

    def on_event(kind: str, data: Dict[str, Any]) -> None:
        if data.get("worker") != name() or req.done:
            return
        label = f"child #{data.get('instance')}"
        if kind == "instance.start":
            message = f"Started {label} (pid {data.get('pid')})"
        elif kind == "instance.state" and data.get("state") in ("starting", "waiting", "backoff", "stopping"):
            message = {
                "starting": f"Starting {label}",
                "waiting": f"{label} waits for its dependencies",
                "backoff": f"{label} exited; restart scheduled",
                "stopping": f"Stopping {label}",
            }[data["state"]]
        elif kind == "instance.exit" and not data.get("expected"):
            why = f"code {data.get('code')}" if data.get("signal") is None else str(data.get("signal"))
            message = f"{label} exited ({why}) after {data.get('runtime_ms')} ms"
        elif kind == "instance.failed":
            message = f"{label} could not start: {data.get('error')}"
        else:
            return
        req.event("progress", {"message": message, "instance": data.get("instance"), "kind": kind})

    return supervisor.bus.subscribe("instance.", on_event)


def _reply_later(req: Any, result: Callable[[], Any]) -> Callable[[], None]:
    def done() -> None:
        if req.done:
            return
        try:
            req.reply(result())
        except ApmError as exc:
            req.fail(exc)

    return done


# ---------------------------------------------------------------------------------------------- registration


def register_worker_commands(commands: Any, supervisor: Supervisor) -> None:
    """Register run, start, stop, restart, update, list, info, env, remove, stopall, rename, copy, signal, wait."""
    sup = supervisor

    def run(req: Any) -> None:
        config = _arg(req, "config", dict)
        cwd = _arg(req, "cwd", str, required=False)
        wait = _arg(req, "wait", bool, required=False, default=False)
        if cwd is not None and not os.path.isabs(cwd):
            raise UsageError(f"run: cwd must be an absolute path, got {cwd!r}")
        clean, warnings = options.coerce_block("worker", config, where="run")
        if cwd and not clean.get("path"):
            clean["path"] = cwd
        _guard_config(clean, req.peer, sup, cwd or "/")
        sup.check_spawnable(clean)
        name = clean["name"]
        on_ready = _waiter(req, sup, lambda: name) if wait else None
        status = sup.add(clean, {"kind": "cli", "file": None}, start=True, on_ready=on_ready)
        if warnings:
            status["warnings"] = warnings
        if not wait:
            req.reply(status)

    def start(req: Any) -> None:
        name = _arg(req, "name", str)
        wait = _arg(req, "wait", bool, required=False, default=False)
        if name == "all" and not sup.exists("all"):
            names = sup.start_all(on_ready=_all_ready(req) if wait else None)
            if not wait:
                req.reply({"started": names})
            return
        worker_name = sup.target(name)[0].name
        on_ready = _waiter(req, sup, lambda: worker_name) if wait else None
        status = sup.start(name, on_ready=on_ready)
        if not wait:
            req.reply(status)

    def _all_ready(req: Any) -> Callable[[Optional[Dict[str, Any]]], None]:
        def on_ready(detail: Optional[Dict[str, Any]]) -> None:
            if req.done:
                return
            if detail is not None:
                req.fail(_start_failed(str(detail.get("worker") or "a worker"), detail))
            else:
                req.reply({"workers": sup.list()})

        return on_ready

    def stop(req: Any) -> None:
        name = _arg(req, "name", str)
        if name == "all" and not sup.exists("all"):
            names: List[str] = []
            names.extend(sup.stop_all(_reply_later(req, lambda: {"stopped": names})))
            return
        worker = sup.target(name)[0]
        sup.stop(name, _reply_later(req, lambda: sup.status(worker.name)))

    def restart(req: Any) -> None:
        name = _arg(req, "name", str)
        wait = _arg(req, "wait", bool, required=False, default=False)
        worker_name = sup.target(name)[0].name
        on_ready = _waiter(req, sup, lambda: worker_name) if wait else None
        status = sup.restart(name, on_ready=on_ready)
        if not wait:
            req.reply(status)

    def update(req: Any) -> None:
        name = _arg(req, "name", str)
        changes = _arg(req, "config", dict)
        do_restart = _arg(req, "restart", bool, required=False, default=True)
        wait = _arg(req, "wait", bool, required=False, default=False)
        worker = sup.get(name)
        if not req.peer.is_root and req.peer.uid != os.geteuid():
            if "user" in {options.normalize_name(str(k)) for k in changes}:
                raise PermissionDenied("only root may change a worker's user", hint="leave `user` out of the update")
            runs_as = worker.config.get("user") or sup.ops.current_user().name
            if sup.ops.is_root and runs_as != req.peer.username:
                raise PermissionDenied(
                    f"worker {worker.name!r} runs as {runs_as}: only root or {runs_as} may change its config",
                    hint="ask an administrator, or run your own copy with `apm run`",
                )
            probe = dict(worker.config)
            probe.update({options.normalize_name(str(k)): v for k, v in changes.items() if v is not None})
            probe.pop("user", None)
            _guard_config(probe, req.peer, sup, str(worker.config.get("path") or "/"))
        new_name = changes.get("name")
        final = [new_name if isinstance(new_name, str) and new_name else worker.name]
        on_ready = _waiter(req, sup, lambda: final[0]) if wait else None
        status = sup.update(name, changes, restart=do_restart, on_ready=on_ready)
        final[0] = status["name"]
        if not wait:
            req.reply(status)

    def list_(req: Any) -> None:
        req.reply({"workers": sup.list()})

    def info(req: Any) -> None:
        req.reply(sup.info(_arg(req, "name", str)))

    def env(req: Any) -> None:
        name = _arg(req, "name", str)
        index = _arg(req, "index", int, required=False)
        worker, from_name = sup.target(name)
        if index is None:
            zero_based = from_name if from_name is not None else 0
        else:
            if index < 1:
                raise UsageError(f"env: index is 1-based, got {index}", hint=f"instances are {worker.name}#1 and up")
            zero_based = index - 1
        req.reply({"env": sup.environment(worker.name, zero_based)})

    def remove(req: Any) -> None:
        name = _arg(req, "name", str)
        worker = sup.get(name)
        sup.remove(worker.name, _reply_later(req, lambda: {"removed": worker.name}))

    def stopall(req: Any) -> None:
        names: List[str] = []
        names.extend(sup.stop_all(_reply_later(req, lambda: {"stopped": names})))

    def rename(req: Any) -> None:
        req.reply(sup.rename(_arg(req, "name", str), _arg(req, "new", str)))

    def copy(req: Any) -> None:
        req.reply(sup.copy(_arg(req, "name", str), _arg(req, "new", str)))

    def signal(req: Any) -> None:
        target = _arg(req, "target", str)
        if "signal" not in req.args:
            raise UsageError("signal: argument 'signal' is required", hint="a name like SIGHUP or a number")
        signum = parse_signal(req.args["signal"])
        req.reply(
            {
                "sent": sup.signal(target, signum),
                "signal": _signal.Signals(signum).name if signum in {int(s) for s in _signal.Signals} else str(signum),
            }
        )

    def wait(req: Any) -> None:
        name = _arg(req, "name", str)
        timeout = _arg(req, "timeout", int, required=False, default=DEFAULT_WAIT_MS)
        if timeout < 0:
            raise UsageError(f"wait: timeout must be >= 0 ms, got {timeout}")
        worker = sup.get(name)
        if worker.is_running():
            req.reply(sup.status(worker.name))
            return
        cleanup: List[Callable[[], None]] = []

        def finish(result: Optional[Dict[str, Any]], error: Optional[ApmError]) -> None:
            for fn in cleanup:
                fn()
            cleanup.clear()
            if req.done:
                return
            if error is not None:
                req.fail(error)
            else:
                req.reply(result)

        def on_state(kind: str, data: Dict[str, Any]) -> None:
            if (
                kind == "worker.removed"
                and data.get("worker") == worker.name
                and sup.workers.get(worker.name) is not worker
            ):
                finish(None, ApmError(f"worker {worker.name!r} was removed while waiting"))
                return
            if data.get("worker") != worker.name:
                return
            if kind == "instance.state":
                req.event("state", data)
            if worker.is_running():
                finish(sup.status(worker.name), None)

        def too_late() -> None:
            finish(
                None,
                ApmError(
                    f"timed out after {timeout} ms waiting for {worker.name!r} to run (status: {worker.status.value})",
                    hint=f"see why: apm info {worker.name} / apm log {worker.name}",
                ),
            )

        cleanup.append(sup.bus.subscribe("instance.state", on_state))
        cleanup.append(sup.bus.subscribe("worker.", on_state))
        timer = sup.loop.call_later(timeout / 1000.0, too_late)
        cleanup.append(timer.cancel)
        req.on_close(lambda: finish(None, None))

    commands.register("run", run)
    commands.register("start", start)
    commands.register("stop", stop)
    commands.register("restart", restart)
    commands.register("update", update)
    commands.register("list", list_, write=False)
    commands.register("info", info)
    commands.register("env", env)
    commands.register("remove", remove)
    commands.register("stopall", stopall)
    commands.register("rename", rename)
    commands.register("copy", copy)
    commands.register("signal", signal)
    commands.register("wait", wait, write=False)
