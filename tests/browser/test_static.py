"""The GUI's source obeys its rules without a browser: no HTML parsing of strings, no
inline scripts or styles (the CSP is `default-src 'self'`), no external URLs, and every
network call lives in api.js."""

from __future__ import annotations

import os
import re

WEB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "web")


def sources(ext):
    for root, _, files in os.walk(WEB):
        for name in files:
            if name.endswith(ext):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, WEB), f.read()


def test_no_html_strings_are_parsed():
    banned = re.compile(
        r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|createContextualFragment|DOMParser|\beval\(|new Function\(|setAttribute\(\s*['\"](style|on\w+)['\"]"
    )
    hits = [(path, m.group(0)) for path, text in sources(".js") for m in banned.finditer(text)]
    assert not hits, hits


def test_only_api_js_talks_to_the_network():
    net = re.compile(r"\bfetch\(|new EventSource\(|new WebSocket\(|XMLHttpRequest|navigator\.sendBeacon")
    users = sorted({path for path, text in sources(".js") if net.search(text)})
    assert users == ["js/api.js"], users


def test_csp_compatible_markup_and_no_external_resources():
    external = re.compile(
        r"""(src|href)=["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|(from|import\()\s*["'](https?:)?//"""
    )
    for path, text in list(sources(".html")) + list(sources(".css")) + list(sources(".js")):
        assert not external.search(text), f"{path} loads something from another site"
    for path, text in sources(".html"):
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{path} has an inline script"
        assert not re.search(r"\sstyle=", text), f"{path} has an inline style"
        assert not re.search(r"\son[a-z]+=", text), f"{path} has an inline event handler"
        assert "<style" not in text, f"{path} has a <style> block"


def test_modules_are_preloaded_or_loaded_on_demand():
    """The first page's modules are preloaded (one round of requests); the other pages are
    imported on demand by app.js.  A module nobody loads is a mistake either way."""
    with open(os.path.join(WEB, "index.html"), encoding="utf-8") as f:
        html = f.read()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/([^"]+)"', html))
    texts = dict(sources(".js"))
    lazy = {
        "js/" + os.path.normpath(os.path.join("js", m))[3:]
        for m in re.findall(r"import\('\./([^']+)'\)", texts["js/app.js"])
    }
    graph = {
        path: {os.path.normpath(os.path.join(os.path.dirname(path), m)) for m in re.findall(r"from '(\.[^']+)'", text)}
        for path, text in texts.items()
    }
    eager, todo = set(), ["js/app.js"]
    while todo:
        mod = todo.pop()
        if mod not in eager:
            eager.add(mod)
            todo += graph[mod]
    assert preloaded == eager, (eager - preloaded, preloaded - eager)
    reachable, todo = set(eager), list(lazy)
    while todo:
        mod = todo.pop()
        if mod not in reachable:
            reachable.add(mod)
            todo += graph[mod]
    assert reachable == set(texts), set(texts) - reachable
