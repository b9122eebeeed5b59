"""Instance state table, change_state() and the derived worker status."""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Tuple

import pytest

from alter.events import EventBus
from alter.supervise.states import ALLOWED, InstanceState, InvalidTransition, WorkerStatus, change_state, worker_status

S = InstanceState


class Thing:
    def __init__(self, state: InstanceState) -> None:
        self.state = state

    def state_event(self, old: InstanceState) -> Dict[str, Any]:
        return {"state": self.state.value, "old": old.value}


EXPECTED = {
    S.STOPPED: {S.WAITING, S.STARTING},
    S.WAITING: {S.STARTING, S.STOPPED},
    S.STARTING: {S.RUNNING, S.FAILED, S.STOPPED},
    S.RUNNING: {S.STOPPING, S.BACKOFF, S.EXITED, S.ERRORED},
    S.STOPPING: {S.STOPPED},
    S.BACKOFF: {S.STARTING, S.WAITING, S.STOPPED},
    S.EXITED: {S.STARTING, S.WAITING, S.STOPPED},
    S.ERRORED: {S.STARTING, S.WAITING, S.STOPPED},
    S.FAILED: {S.STARTING, S.WAITING, S.STOPPED},
}


def test_table_is_the_documented_one() -> None:
    assert {k: set(v) for k, v in ALLOWED.items()} == EXPECTED
    assert set(ALLOWED) == set(InstanceState)


@pytest.mark.parametrize("old,new", [(a, b) for a, b in itertools.product(InstanceState, InstanceState) if a is not b])
def test_every_transition(old: InstanceState, new: InstanceState) -> None:
    seen: List[Tuple[str, Dict[str, Any]]] = []
    thing = Thing(old)
    if new in EXPECTED[old]:
        assert change_state(thing, new, lambda k, d: seen.append((k, d)))
        assert thing.state is new
        assert seen == [("instance.state", {"state": new.value, "old": old.value})]
    else:
        with pytest.raises(InvalidTransition):
            change_state(thing, new, lambda k, d: seen.append((k, d)))
        assert thing.state is old and not seen


def test_same_state_is_a_silent_noop() -> None:
    bus = EventBus()
    seen: list = []
    bus.subscribe("instance.", lambda k, d: seen.append(k))
    thing = Thing(S.RUNNING)
    assert change_state(thing, S.RUNNING, bus.publish) is False
    assert not seen


def test_non_strict_moves_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    thing = Thing(S.STOPPED)
    assert change_state(thing, S.RUNNING, None, strict=False)
    assert thing.state is S.RUNNING
    assert "not allowed" in caplog.text


@pytest.mark.parametrize(
    "states,enabled,expected",
    [
        ([], True, WorkerStatus.STOPPED),
        ([S.RUNNING], False, WorkerStatus.DISABLED),
        ([S.RUNNING, S.RUNNING], True, WorkerStatus.RUNNING),
        ([S.RUNNING, S.BACKOFF], True, WorkerStatus.PARTIAL),
        ([S.RUNNING, S.STOPPING], True, WorkerStatus.PARTIAL),
        ([S.STOPPING, S.STOPPED], True, WorkerStatus.STOPPING),
        ([S.STARTING, S.WAITING], True, WorkerStatus.STARTING),
        ([S.WAITING, S.WAITING], True, WorkerStatus.WAITING),
        ([S.BACKOFF, S.ERRORED], True, WorkerStatus.BACKOFF),
        ([S.ERRORED, S.EXITED], True, WorkerStatus.ERRORED),
        ([S.FAILED, S.STOPPED], True, WorkerStatus.ERRORED),
        ([S.EXITED, S.STOPPED], True, WorkerStatus.EXITED),
        ([S.STOPPED, S.STOPPED], True, WorkerStatus.STOPPED),
    ],
)
def test_worker_status(states: List[InstanceState], enabled: bool, expected: WorkerStatus) -> None:
    assert worker_status(states, enabled) is expected


def test_event_bus_prefixes_and_unsubscribe() -> None:
    bus = EventBus()
    got: list = []
    unsub = bus.subscribe("worker.", lambda k, d: got.append(("prefix", k)))
    bus.subscribe("worker.added", lambda k, d: got.append(("exact", k)))
    bus.subscribe("*", lambda k, d: got.append(("all", k)))

    def broken(k: str, d: Dict[str, Any]) -> None:
        raise RuntimeError("boom")

    bus.subscribe("worker.added", broken)
    bus.publish("worker.added", {})
    bus.publish("instance.state", {})
    unsub()
    bus.publish("worker.removed", {})
    assert got == [
        ("prefix", "worker.added"),
        ("exact", "worker.added"),
        ("all", "worker.added"),
        ("all", "instance.state"),
        ("all", "worker.removed"),
    ]
