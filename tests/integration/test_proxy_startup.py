"""A freshly started proxied worker never answers 503 once an instance accepts connections.

The daemon's admission probe backs off (50 ms, 100 ms, ... 1 s) while a program starts, so a program
that starts listening between two probes used to be invisible to the proxy for up to a second: a burst
of 503s at the very start of load.  The proxy processes now get the instances on probation as standby
targets and try them (a connect) whenever no instance is live.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Dict, List, Optional

from tests.helpers import wait_for
from tests.integration.test_proxy_daemon_http import free_port, get, info

# Listens on $PORT only after 1.2 s (a slow-starting program), then answers "ok <APM_INDEX>".
SLOW_SERVER = r"""
import http.server, os, socketserver, time
time.sleep(1.2)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("ok %s\n" % os.environ["APM_INDEX"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def instance_ports(apm: Any, name: str) -> Optional[List[int]]:
    ports = [i["port"] for i in info(apm, name)["instances"] if i["status"] == "running" and i["port"]]
    return ports or None


def test_no_503_once_a_fresh_instance_accepts(apm: Any) -> None:
    script = os.path.join(apm.home, "slow.py")
    with open(script, "w") as f:
        f.write(SLOW_SERVER)
    port = free_port()
    apm("run", "python3", script, "--name", "slow", "--server", f"127.0.0.1:{port}", "--startup-grace", "100")
    (upstream,) = wait_for(lambda: instance_ports(apm, "slow"), timeout=15, what="the instance's port")
    # Until the program listens, nothing accepts: 503 is the right answer (never 502); the last request
    # may already find it listening.
    statuses = []
    while not accepts(upstream):
        statuses.append(get(port)[0])
    assert set(statuses) <= {503, 200}, statuses
    # From the moment it accepts, every request is served -- including before the probe admits it.
    results: Dict[int, int] = {}
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        status, body = get(port)
        results[status] = results.get(status, 0) + 1
        assert status == 200 and body == "ok 0\n", (status, body, results)
    assert results[200] > 10
    wait_for(lambda: any(u.get("state") == "live" for u in info(apm, "slow")["proxy"]["upstreams"].values()),
             timeout=10, what="the probe admitting the instance")  # fmt: skip
