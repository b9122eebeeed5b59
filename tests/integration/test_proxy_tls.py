"""TLS on every server type: https, wss, tcp; mTLS; TLS 1.2+ and ALPN; hot certificate reload."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
import warnings
from typing import Dict

import pytest

from alter.errors import ConfigError
from tests.helpers import wait_for
from tests.integration.test_proxy_support import (  # noqa: F401
    Raw,
    WsClient,
    fresh_upstreams,
    make_certs,
    module_proxy,
    serve,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Dict[str, str]:
    return make_certs(str(tmp_path_factory.mktemp("certs")))


def client_ctx(certs: Dict[str, str], cert: str = "", alpn=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs["ca.pem"])
    if cert:
        ctx.load_cert_chain(certs[f"{cert}.pem"], certs[f"{cert}.key"])
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_conn(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(s, server_hostname="localhost")


def tls_files(certs: Dict[str, str], ca: bool = False) -> dict:
    out = {"tls_cert": certs["server.pem"], "tls_key": certs["server.key"]}
    if ca:
        out["tls_ca"] = certs["ca.pem"]
    return out


def test_https_alpn_sni_and_curl(proxy, ups, certs) -> None:
    _, port = serve(proxy, [ups.start("a")], scheme="https", **tls_files(certs))
    s = tls_conn(port, client_ctx(certs, alpn=["h2", "http/1.1"]))
    assert s.selected_alpn_protocol() == "http/1.1"
    assert s.version() in ("TLSv1.2", "TLSv1.3")
    c = Raw(port, sock=s)
    c.send(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, _, body = c.response()
    assert status == 200 and b'"X-Forwarded-Proto", "https"' in body
    c.send(b"GET /download?size=300000 HTTP/1.1\r\nHost: localhost\r\n\r\n")  # bigger than a TLS record
    assert len(c.response()[2]) == 300000
    c.close()
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", certs["ca.pem"], f"https://localhost:{port}/chunked"],
                         capture_output=True)  # fmt: skip
    assert out.stdout == b"hello, world", out.stderr


def test_tls_flag_on_plain_scheme_and_old_versions_refused(proxy, ups, certs) -> None:
    _, port = serve(proxy, [ups.start("a")], scheme="http", tls=True, **tls_files(certs))
    c = Raw(port, sock=tls_conn(port, client_ctx(certs)))
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response()[0] == 200
    c.close()
    old = client_ctx(certs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        tls_conn(port, old)


def test_mutual_tls(proxy, ups, certs) -> None:
    name, port = serve(proxy, [ups.start("a")], scheme="https", **tls_files(certs, ca=True))
    c = Raw(port, sock=tls_conn(port, client_ctx(certs, "client")))
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response()[0] == 200
    c.close()
    for cert in ("", "evil"):
        with pytest.raises((ssl.SSLError, ConnectionResetError, EOFError, OSError)):
            s = tls_conn(port, client_ctx(certs, cert))
            c = Raw(port, sock=s)  # TLS 1.3: the server's verdict may only show on the first read
            c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            c.response()
    wait_for(lambda: proxy.stats(name)["tls_errors"] >= 2, 5, what="tls errors counted")


def test_wss_and_tls_tcp(proxy, ups, certs) -> None:
    _, port = serve(proxy, [ups.start("a")], scheme="wss", **tls_files(certs))
    ws = WsClient(port, sock=tls_conn(port, client_ctx(certs)))
    assert ws.accepted
    ws.send_text("over tls")
    assert ws.recv_text() == "a:over tls"
    ws.close()
    _, tport = serve(proxy, [ups.start("e", mode="tcp")], scheme="tcp", tls=True, **tls_files(certs, ca=True))
    s = tls_conn(tport, client_ctx(certs, "client"))
    payload = os.urandom(200000)
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += s.recv(65536)
    assert got == payload
    s.close()


def test_certificate_reload_keeps_open_connections(proxy, ups, certs, tmp_path) -> None:
    cert, key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    shutil.copy(certs["server.pem"], cert)
    shutil.copy(certs["server.key"], key)
    name, port = serve(proxy, [ups.start("a")], scheme="https", tls_cert=cert, tls_key=key)
    ctx = client_ctx(certs)
    old_conn = Raw(port, sock=tls_conn(port, ctx))
    old_conn.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert old_conn.response()[0] == 200
    first = tls_conn(port, ctx)
    before = first.getpeercert(binary_form=True)
    first.close()
    # A new certificate (same CA, new serial) lands on disk, written atomically.
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
                    str(tmp_path / "n.key"), "-out", str(tmp_path / "n.csr")], check=True, capture_output=True)  # fmt: skip
    subprocess.run(["openssl", "x509", "-req", "-in", str(tmp_path / "n.csr"), "-CA", certs["ca.pem"], "-CAkey", certs["ca.key"],
                    "-CAcreateserial", "-days", "2", "-out", str(tmp_path / "n.pem"), "-extfile", certs["ext.cnf"]],
                   check=True, capture_output=True)  # fmt: skip
    os.replace(str(tmp_path / "n.key"), key)
    os.replace(str(tmp_path / "n.pem"), cert)

    def new_cert():
        s = tls_conn(port, ctx)
        der = s.getpeercert(binary_form=True)
        s.close()
        return der != before

    wait_for(new_cert, 10, interval=0.2, what="the reloaded certificate")
    old_conn.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection opened before the reload lives on
    assert old_conn.response()[0] == 200
    old_conn.close()
    assert any("TLS: reloaded" in line for line in proxy.log_lines())


def test_handshake_timeout(proxy, ups, certs) -> None:
    _, port = serve(proxy, [ups.start("a")], scheme="https", options={"header_timeout": 500}, **tls_files(certs))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    assert s.recv(10) == b""
    assert time.monotonic() - t0 < 2.0
    s.close()


def test_bad_tls_files_are_a_config_error(proxy, certs) -> None:
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        proxy.configure("badtls", ["https://127.0.0.1:1443"], tls_cert="/nonexistent.pem", tls_key="/nonexistent.key")
    with pytest.raises(ConfigError, match="needs TLS but tls_cert is not set"):
        proxy.configure("badtls", ["https://127.0.0.1:1443"])
