"""Instance and worker states: the enums, the allowed transitions, and derivation.

Dependency-free.  An instance moves only through `change_state()` (which checks
the ALLOWED table and publishes `instance.state`); a worker's status is never
stored, it is derived from its instances by `worker_status()`.

    stopped   not running and not wanted
    waiting   wanted, waiting for `depends_on` workers to run
    starting  a spawn is scheduled / in progress
    running   the main process is alive
    stopping  SIGTERM sent; waiting for the main pid AND the whole tree to vanish
    backoff   exited; a restart is scheduled (`next_start_at`)
    exited    exited with code 0 and the policy says no restart
    errored   exited non-zero / by a signal and the policy says no (more) restarts
    failed    could not be spawned at all (missing executable, bad path, user...)
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Callable, Dict, FrozenSet, Iterable, Optional

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol  # type: ignore


class InstanceState(str, enum.Enum):
    STOPPED = "stopped"
    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    EXITED = "exited"
    ERRORED = "errored"
    FAILED = "failed"


class WorkerStatus(str, enum.Enum):
    RUNNING = "running"
    PARTIAL = "partial"
    STARTING = "starting"
    WAITING = "waiting"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EXITED = "exited"
    ERRORED = "errored"
    DISABLED = "disabled"


S = InstanceState
_IDLE = (S.STOPPED, S.EXITED, S.ERRORED, S.FAILED)

ALLOWED: Dict[InstanceState, FrozenSet[InstanceState]] = {
    S.STOPPED: frozenset({S.WAITING, S.STARTING}),
    S.WAITING: frozenset({S.STARTING, S.STOPPED}),
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.STOPPED}),
    S.RUNNING: frozenset({S.STOPPING, S.BACKOFF, S.EXITED, S.ERRORED}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.BACKOFF: frozenset({S.STARTING, S.WAITING, S.STOPPED}),
    S.EXITED: frozenset({S.STARTING, S.WAITING, S.STOPPED}),
    S.ERRORED: frozenset({S.STARTING, S.WAITING, S.STOPPED}),
    S.FAILED: frozenset({S.STARTING, S.WAITING, S.STOPPED}),
}

IDLE_STATES: FrozenSet[InstanceState] = frozenset(_IDLE)
"""States with no process and nothing scheduled."""

ALIVE_STATES: FrozenSet[InstanceState] = frozenset({S.RUNNING, S.STOPPING})
"""States in which a main process exists."""


class InvalidTransition(RuntimeError):
    """A bug: the engine tried a move the table does not allow."""


class Stateful(Protocol):
    """What `change_state()` needs: a `state` attribute and an event payload."""

    state: InstanceState

    def state_event(self, old: InstanceState) -> Dict[str, Any]: ...


Publish = Callable[[str, Dict[str, Any]], None]


def change_state(obj: Stateful, new: InstanceState, publish: Optional[Publish] = None, strict: bool = True) -> bool:
    """Move `obj` to `new` if ALLOWED (publishing `instance.state`); returns False for a no-op.

    An illegal move raises InvalidTransition when `strict` (tests, development);
    the daemon runs non-strict and logs it instead of dying.
    """
    old = obj.state
    if old is new:
        return False
    if new not in ALLOWED[old]:
        if strict:
            raise InvalidTransition(f"instance state {old.value} -> {new.value} is not allowed")
        logging.getLogger("apm.supervise").error("BUG: instance state %s -> %s is not allowed", old.value, new.value)
    obj.state = new
    if publish is not None:
        publish("instance.state", obj.state_event(old))
    return True


def worker_status(states: Iterable[InstanceState], enabled: bool = True) -> WorkerStatus:
    """Derive a worker's status from its instances' states (precedence top to bottom)."""
    if not enabled:
        return WorkerStatus.DISABLED
    found = list(states)
    present = set(found)
    if not found:
        return WorkerStatus.STOPPED
    if present == {S.RUNNING}:
        return WorkerStatus.RUNNING
    if S.RUNNING in present:
        return WorkerStatus.PARTIAL
    if S.STOPPING in present:
        return WorkerStatus.STOPPING
    if S.STARTING in present:
        return WorkerStatus.STARTING
    if S.WAITING in present:
        return WorkerStatus.WAITING
    if S.BACKOFF in present:
        return WorkerStatus.BACKOFF
    if present & {S.ERRORED, S.FAILED}:
        return WorkerStatus.ERRORED
    if S.EXITED in present:
        return WorkerStatus.EXITED
    return WorkerStatus.STOPPED
