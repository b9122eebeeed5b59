"""depends_on: waiting, timeout, unknown names, ordering and cycles."""

from __future__ import annotations

from typing import Iterator

import pytest

from alter.errors import ConfigError
from alter.supervise.deps import find_cycle, order
from alter.supervise.testing import Harness


def w(name: str, **kw: object) -> dict:
    return {"name": name, "exec": "sleep", "params": ["100"], **kw}


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def test_order_puts_dependencies_first_and_is_stable() -> None:
    graph = {"web": ["api"], "api": ["db", "cache"], "db": [], "cache": [], "misc": ["nope"]}
    got = order(graph)
    assert got.index("db") < got.index("api") < got.index("web")
    assert got.index("cache") < got.index("api")
    assert order({"a": [], "b": [], "c": []}) == ["a", "b", "c"]


def test_cycle_is_named() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    with pytest.raises(ConfigError, match="a -> b -> a"):
        order({"a": ["b"], "b": ["a"], "x": []})


def test_dependent_waits_until_dependency_runs(h: Harness) -> None:
    h.sup.add(w("db"), start=False)
    h.sup.add(w("web", depends_on=["db"]))
    h.settle()
    st = h.status("web")
    assert st["status"] == "waiting" and st["waiting_for"] == ["db"]
    assert "waiting for db" in h.log("web").messages[0]
    assert not h.ops.spawns("web")
    h.sup.start("db")
    h.settle()
    assert h.status("web")["status"] == "running"


def test_waits_for_all_instances_of_the_dependency(h: Harness) -> None:
    h.ops.ignore_term_next = False
    h.sup.add(w("db", instances=2, restart_err=True, err_delay=1000))
    h.settle()
    h.ops.exit(1001, code=1)  # db is partial
    h.sup.add(w("web", depends_on=["db"]))
    h.settle()
    assert h.status("web")["status"] == "waiting"
    h.advance(1)
    assert h.status("db")["status"] == "running"
    assert h.status("web")["status"] == "running"


def test_timeout_starts_anyway_with_a_warning(h: Harness) -> None:
    h.sup.add(w("db"), start=False)
    h.sup.add(w("web", depends_on=["db"], depends_timeout=3000))
    h.advance(2.999)
    assert h.status("web")["status"] == "waiting"
    h.advance(0.001)
    assert h.status("web")["status"] == "running"
    assert "still not running after depends_timeout 3000 ms: starting anyway" in h.log("web").messages[1]


def test_unknown_dependency_warns_and_is_ignored(h: Harness) -> None:
    h.sup.add(w("web", depends_on=["ghost"]))
    h.settle()
    assert h.status("web")["status"] == "running"
    assert "'ghost', which is no worker here" in h.log("web").messages[0]


def test_restore_orders_by_dependencies(h: Harness) -> None:
    snap = {
        "version": 1,
        "workers": [
            {"config": w("web", depends_on=["api"]), "origin": {"kind": "cli", "file": None}, "desired": "running"},
            {"config": w("api", depends_on=["db"]), "origin": {"kind": "cli", "file": None}, "desired": "running"},
            {"config": w("db"), "origin": {"kind": "cli", "file": None}, "desired": "running"},
        ],
    }
    h.sup.restore(snap)
    h.settle()
    spawned = [c[1] for c in h.ops.spawns()]
    assert spawned == ["db", "api", "web"]
    assert all(h.status(n)["status"] == "running" for n in ("db", "api", "web"))


def test_start_all_with_a_cycle_is_an_error(h: Harness) -> None:
    h.sup.add(w("a", depends_on=["b"]), start=False)
    h.sup.add(w("b", depends_on=["a"]), start=False)
    with pytest.raises(ConfigError, match="cycle"):
        h.sup.start_all()


def test_restore_with_a_cycle_still_starts_after_timeout(h: Harness) -> None:
    snap = {
        "workers": [
            {"config": w("a", depends_on=["b"], depends_timeout=1000), "desired": "running"},
            {"config": w("b", depends_on=["a"], depends_timeout=1000), "desired": "running"},
        ]
    }
    h.sup.restore(snap)
    h.advance(1)
    assert h.status("a")["status"] == "running" and h.status("b")["status"] == "running"


def test_stop_cancels_the_wait(h: Harness) -> None:
    h.sup.add(w("db"), start=False)
    h.sup.add(w("web", depends_on=["db"], depends_timeout=1000))
    h.settle()
    h.sup.stop("web")
    h.advance(2)
    assert h.status("web")["status"] == "stopped" and not h.ops.spawns("web")


def test_status_revision_orders_statuses_of_a_worker(h: Harness) -> None:
    """`revision` grows with every event, so a later status always outranks an earlier one."""
    h.sup.add(w("rev"), start=False)
    stopped = h.status("rev")
    h.sup.start("rev")
    h.settle()
    started = h.status("rev")
    assert started["status"] != stopped["status"]
    assert started["revision"] > stopped["revision"]
    assert h.status("rev")["revision"] == started["revision"]  # no event in between: same revision
