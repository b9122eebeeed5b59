"""The only way HTTP threads reach daemon state: through the event loop.

    bridge.call("stop", {"name": "api"})      # a control command, as the CLI would send it
    bridge.run(fn, arg)                         # fn(arg) on the loop thread, result or exception back

`call()` runs the very handler the control socket runs (same validation,
same errors), with an in-process `LoopRequest` standing in for the socket's
Request.  The GUI user acts with the daemon's own rights (the password is
the daemon's admin password).  Commands that answer later (stop, remove,
wait...) are waited for; on timeout the request is cancelled as if the
client had disconnected.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from alter.daemon.server import Peer
from alter.errors import ApmError, UsageError
from alter.web.errors import GatewayTimeout, ServiceUnavailable

log = logging.getLogger("apm.web")

DEFAULT_TIMEOUT = 10.0
MAX_EVENTS = 10_000  # events kept per request (grep matches, log line batches...)


class FrameSink:
    """Stands in for the socket connection of a Request: handlers that relay finished protocol
    frames (`conn.send(b'{"id", "event", "data"}\n')`, e.g. `grep`) become events of the request,
    and the output buffer always looks empty (no backpressure: the HTTP thread waits for the reply)."""

    outbuf = b""

    def __init__(self, req: LoopRequest) -> None:
        self.req = req

    def send(self, data: bytes) -> None:
        for line in bytes(data).split(b"\n"):
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("GUI: `%s` sent a frame that is not JSON; dropped", self.req.cmd)
                continue
            if isinstance(msg, dict) and "event" in msg:
                self.req.event(str(msg["event"]), msg.get("data"))


class LoopRequest:
    """Duck-types alter.daemon.server.Request for handlers called from the GUI (loop thread only)."""

    def __init__(self, cmd: str, args: Dict[str, Any], peer: Peer, settle: Callable[[Tuple[str, Any]], None]) -> None:
        self.id = 0  # request id, as on the wire (frames relayed through `conn` carry it)
        self.cmd = cmd
        self.args = args
        self.conn = FrameSink(self)
        self.write = True
        self.done = False
        self.events: List[Tuple[str, Any]] = []
        self._peer = peer
        self._settle_cb = settle
        self._close: List[Callable[[], None]] = []
        self.held = False
        self.pending: Optional[Tuple[str, Any]] = None
        self.before: Any = None  # what the caller's `before()` returned (bridge.call)

    @property
    def peer(self) -> Peer:
        return self._peer

    def event(self, kind: str, data: Any = None) -> None:
        if not self.done and len(self.events) < MAX_EVENTS:
            self.events.append((kind, data))

    def reply(self, result: Any = None) -> None:
        self._finish(("ok", result))

    def fail(self, err: ApmError) -> None:
        self._finish(("error", err))

    def on_close(self, callback: Callable[[], None]) -> None:
        self._close.append(callback)

    def _finish(self, outcome: Tuple[str, Any]) -> None:
        if self.done:
            return
        self.done = True
        self._close.clear()
        if self.held:
            self.pending = outcome
        else:
            self._settle_cb(outcome)

    def release(self) -> None:
        self.held = False
        if self.pending is not None:
            outcome, self.pending = self.pending, None
            self._settle_cb(outcome)

    def cancel(self) -> None:
        """The HTTP side gave up waiting: run the on_close callbacks (cancel waits)."""
        callbacks, self._close = self._close, []
        self.done = True
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("error cancelling %s", self.cmd)


def _cancel_all(requests: List[LoopRequest]) -> None:
    for req in requests:
        req.cancel()


class LoopBridge:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.peer = Peer(pid=os.getpid(), uid=os.geteuid(), gid=os.getegid(), can_write=True)
        self.closed = False  # set when the daemon's loop is gone: answer 503 at once

    def _check_open(self) -> None:
        if self.closed:
            raise ServiceUnavailable("the daemon is shutting down", hint="reconnect in a moment")

    @property
    def loop(self) -> Any:
        return self.daemon.loop

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """fn(*args) on the loop thread; its result, or its exception re-raised here."""
        self._check_open()
        future = self.loop.submit(fn, *args)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise GatewayTimeout(
                f"the daemon did not answer within {timeout:g} s", hint="it may be busy; try again"
            ) from None

    def call(
        self,
        cmd: str,
        args: Optional[Dict[str, Any]] = None,
        timeout: float = DEFAULT_TIMEOUT,
        after: Optional[Callable[[LoopRequest], None]] = None,
        before: Optional[Callable[[], Any]] = None,
    ) -> Any:
        """Run control command `cmd` on the loop; its result, or its ApmError raised here."""
        return self.call_events(cmd, args, timeout, after, before)[0]

    def call_events(
        self,
        cmd: str,
        args: Optional[Dict[str, Any]] = None,
        timeout: float = DEFAULT_TIMEOUT,
        after: Optional[Callable[[LoopRequest], None]] = None,
        before: Optional[Callable[[], Any]] = None,
    ) -> Tuple[Any, List[Tuple[str, Any]]]:
        """Like `call`, plus the events the command streamed before its reply: (result, [(kind, data)]).

        `before()` runs on the loop just before the handler (its value goes to `after` as
        `request.before`); `after(request)` runs on the loop right after the handler returned,
        before the reply is released (and before the state is flushed to disk).
        """
        self._check_open()
        future: concurrent.futures.Future[Tuple[str, Any]] = concurrent.futures.Future()
        holder: List[LoopRequest] = []

        def settle(outcome: Tuple[str, Any]) -> None:
            try:
                self.daemon.saver.flush()  # an acknowledged change is on disk, as for the CLI
            except Exception:
                log.exception("saving state before replying to the GUI failed")
            if not future.done():
                future.set_result(outcome)

        def run() -> None:
            command = self.daemon.commands.get(cmd)
            req = LoopRequest(cmd, dict(args or {}), self.peer, settle)
            holder.append(req)
            if command is None:
                req.fail(UsageError(f"unknown command {cmd!r}"))
                return
            req.held = after is not None
            req.before = before() if before is not None else None
            try:
                command.handler(req)
            except ApmError as exc:
                req.fail(exc)
            except Exception as exc:
                log.exception("internal error handling %r for the GUI", cmd)
                req.fail(
                    ApmError(
                        f"internal error while handling {cmd!r}: {type(exc).__name__}",
                        hint="this is a bug in apm: the daemon log has the details",
                    )
                )
            if after is not None:
                try:
                    after(req)
                except Exception:
                    log.exception("GUI post-processing of %r failed", cmd)
                finally:
                    req.release()

        self.loop.call_soon_threadsafe(run)
        try:
            kind, value = future.result(timeout)
        except concurrent.futures.TimeoutError:
            self.loop.call_soon_threadsafe(_cancel_all, holder)
            raise GatewayTimeout(
                f"`{cmd}` did not finish within {timeout:g} s",
                hint="it may still be in progress: check the worker list",
            ) from None
        if kind == "error":
            raise value
        return value, holder[0].events
