"""ProxyManager without a daemon: its own EventLoop on a background thread (tests, bench, experiments).

    proxy = StandaloneProxy(processes=2)
    proxy.configure("api", ["http://127.0.0.1:8080"])
    proxy.set_upstreams("api", [Upstream(0, "127.0.0.1", 3001), Upstream(1, "127.0.0.1", 3002)])
    proxy.wait_ready("api", 3001); proxy.wait_ready("api", 3002)
    ...
    proxy.close()

Every method runs the manager call on the loop thread and waits for it.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from alter.daemon.loop import EventLoop
from alter.proxy.manager import ProxyManager
from alter.proxy.model import ListenerSpec, Upstream


class StandaloneProxy:
    def __init__(self, processes: int = 0, launcher: Optional[Sequence[str]] = None,
                 env: Optional[Dict[str, str]] = None, echo_logs: bool = False) -> None:  # fmt: skip
        self.logs: List[Tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self.echo = echo_logs
        self.loop = EventLoop()
        self.thread = threading.Thread(target=self.loop.run, name="apm-proxy-manager", daemon=True)
        self.thread.start()
        self.manager: ProxyManager = self.call(ProxyManager, self.loop, processes, launcher, self._log, env)
        self.call(self.manager.start)
        self.closed = False

    def _log(self, worker: str, level: str, msg: str) -> None:
        with self._lock:
            self.logs.append((worker, level, msg))
        if self.echo:
            print(f"[proxy] {worker} {level}: {msg}", flush=True)

    def log_lines(self, worker: Optional[str] = None) -> List[str]:
        with self._lock:
            return [m for w, _, m in self.logs if worker is None or w == worker]

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0, **kw: Any) -> Any:
        return self.loop.submit(lambda: fn(*args, **kw)).result(timeout)

    def _wait(self, start: Callable[[Callable[..., None]], None], timeout: float) -> Any:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def done(*result: Any) -> None:
            if not fut.done():
                fut.set_result(result[0] if result else None)

        self.call(start, done)
        return fut.result(timeout)

    # ------------------------------------------------------------------ manager API

    def configure(self, worker: str, listeners: Sequence[Union[str, ListenerSpec]],
                  vanguard: Optional[Dict[str, Any]] = None, options: Optional[Dict[str, Any]] = None,
                  **tls: Any) -> None:  # fmt: skip
        specs = [ls if isinstance(ls, ListenerSpec) else ListenerSpec.parse(ls, **tls) for ls in listeners]
        self.call(self.manager.configure, worker, specs, vanguard, options)
        self.sync()

    def set_upstreams(self, worker: str, upstreams: List[Upstream], wait: bool = True, timeout: float = 15.0) -> None:
        self.call(self.manager.set_upstreams, worker, upstreams)
        if wait:
            for u in upstreams:
                if u.state == "accepting" and not self.wait_ready(worker, u.port, timeout, u.host):
                    raise TimeoutError(f"upstream {u.key} of {worker} never accepted connections")
            self.sync()

    def wait_ready(self, worker: str, port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> bool:
        return bool(self._wait(lambda cb: self.manager.when_ready(worker, port, cb, timeout, host), timeout + 5))

    def drain(self, worker: str, index: int, port: Optional[int] = None, timeout_ms: Optional[int] = None,
              wait: float = 120.0) -> bool:  # fmt: skip
        ok = self._wait(lambda cb: self.manager.drain(worker, index, cb, port, timeout_ms), wait)
        return bool(ok)

    def drain_async(self, worker: str, index: int, callback: Callable[[bool], Any], port: Optional[int] = None,
                    timeout_ms: Optional[int] = None) -> None:  # fmt: skip
        self.call(self.manager.drain, worker, index, callback, port, timeout_ms)

    def remove(self, worker: str) -> None:
        self.call(self.manager.remove, worker)
        self.sync()

    def sync(self, timeout: float = 15.0) -> None:
        """Wait until every ready proxy process has handled everything sent to it so far."""
        self._wait(lambda cb: self.manager.request_stats(cb), timeout)

    def stats(self, worker: str, fresh: bool = True) -> Dict[str, Any]:
        if fresh:
            self.sync()
        return dict(self.call(self.manager.stats, worker))

    def wait_processes(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(h.ready for h in self.call(lambda: list(self.manager.pool.procs))):
                return
            time.sleep(0.02)
        raise TimeoutError("proxy processes did not start")

    def pids(self) -> List[int]:
        return list(self.call(self.manager.pids))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.call(self.manager.close, timeout=30.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5.0)
            self.loop.close()

    def __enter__(self) -> StandaloneProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
