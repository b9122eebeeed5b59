"""`depends_on`: start order across workers and waiting for dependencies to run.

* `order()` sorts worker names so dependencies come first (stable: otherwise
  the given order), raising ConfigError naming the cycle (`a -> b -> a`).
* `DependencyWait` holds one worker in `waiting` until every named worker is
  running (all of its wanted instances), or `depends_timeout` passes (then it
  starts anyway; the worker logs a warning).
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence

from alter.errors import ConfigError


def find_cycle(graph: Mapping[str, Sequence[str]]) -> Optional[List[str]]:
    """A dependency cycle as a closed path ([a, b, a]), or None.  Unknown names are ignored."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {name: WHITE for name in graph}
    stack: List[str] = []

    def visit(name: str) -> Optional[List[str]]:
        color[name] = GREY
        stack.append(name)
        for dep in graph.get(name, ()):
            if dep not in color:
                continue
            if color[dep] == GREY:
                return stack[stack.index(dep) :] + [dep]
            if color[dep] == WHITE:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        color[name] = BLACK
        return None

    for name in graph:
        if color[name] == WHITE:
            found = visit(name)
            if found:
                return found
    return None


def order(graph: Mapping[str, Sequence[str]]) -> List[str]:
    """Names with every (known) dependency before its dependents; ConfigError on a cycle."""
    cycle = find_cycle(graph)
    if cycle:
        raise ConfigError(
            "depends_on forms a cycle: " + " -> ".join(cycle),
            hint="remove one of these depends_on entries so the workers can start in some order",
        )
    done: List[str] = []
    seen = set()

    def place(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in graph.get(name, ()):
            if dep in graph:
                place(dep)
        done.append(name)

    for name in graph:
        place(name)
    return done


class DependencyWait:
    """Waits for `deps` to be ready (`is_ready(name)`), then calls `on_go(timed_out, still_pending)`."""

    def __init__(
        self,
        loop: Any,
        deps: Sequence[str],
        timeout_ms: int,
        is_ready: Callable[[str], bool],
        on_go: Callable[[bool, List[str]], None],
    ) -> None:
        self.loop = loop
        self.deps = list(deps)
        self.is_ready = is_ready
        self.on_go = on_go
        self.done = False
        self.timer = loop.call_later(max(0, timeout_ms) / 1000.0, self._timeout)

    def pending(self) -> List[str]:
        return [d for d in self.deps if not self.is_ready(d)]

    def check(self) -> None:
        if not self.done and not self.pending():
            self._finish(False, [])

    def _timeout(self) -> None:
        if not self.done:
            self._finish(True, self.pending())

    def _finish(self, timed_out: bool, pending: List[str]) -> None:
        self.cancel()
        self.on_go(timed_out, pending)

    def cancel(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
