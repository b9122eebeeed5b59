"""The GUI's static files, read once, with a content hash that makes them cacheable forever.

    assets = Assets()                      # GuiService; load() runs once, in the GUI thread
    assets.tag                             # "3f9c0a1b2c4d": sha256 of the whole web tree, shortened
    assets.get("js/app.js")                # (bytes, etag); NotFound for a file that does not ship
    assets.get("index.html")               # the page, its asset URLs rewritten to /a/<tag>/...

Every file is also served under `/a/<tag>/<path>` with `Cache-Control: public,
max-age=31536000, immutable`: a new build (any file changed) has a new tag, so
the URLs change and nothing stale is ever used.  index.html itself stays
`no-cache` (it is the one URL that cannot change) and its `href="/..."` /
`src="/..."` attributes (stylesheets, modulepreloads, app.js, favicon — not
`/api/...`) point under the prefix when served; relative `import`s inside the
modules then resolve under the same prefix by themselves.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Callable, Dict, List, Optional, Tuple

from alter.errors import NotFound

PREFIX = "a"  # /a/<tag>/<path>
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_ASSET_URL = re.compile(rb'(\s(?:href|src)=")/(?!/|api/|' + PREFIX.encode() + rb'/)([^"]*")')


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def rewrite_index(html: bytes, tag: str) -> bytes:
    """index.html with every same-origin asset URL under /a/<tag>/ (API URLs untouched)."""
    return _ASSET_URL.sub(rb"\1/" + f"{PREFIX}/{tag}/".encode() + rb"\2", html)


class Assets:
    def __init__(
        self, reader: Optional[Callable[[str], bytes]] = None, lister: Optional[Callable[[], List[str]]] = None
    ) -> None:
        if reader is None or lister is None:
            from alter.resources import list_web, read_web

            reader, lister = reader or read_web, lister or list_web
        self._reader = reader
        self._lister = lister
        self._lock = threading.Lock()
        self._files: Optional[Dict[str, Tuple[bytes, str]]] = None
        self._tag = ""

    def load(self) -> None:
        """Read every file once and hash the tree (path and bytes of each file, in path order)."""
        with self._lock:
            if self._files is not None:
                return
            digest = hashlib.sha256()
            files: Dict[str, Tuple[bytes, str]] = {}
            for path in sorted(self._lister()):
                data = self._reader(path)
                digest.update(f"{path}\0{len(data)}\0".encode())
                digest.update(data)
                files[path] = (data, etag_of(data))
            tag = digest.hexdigest()[:12]
            index = files.get("index.html")
            if index is not None:
                page = rewrite_index(index[0], tag)
                files["index.html"] = (page, etag_of(page))
            self._tag = tag
            self._files = files

    @property
    def tag(self) -> str:
        self.load()
        return self._tag

    def get(self, rel: str) -> Tuple[bytes, str]:
        """(bytes, ETag) of one file; NotFound when it is not part of the GUI."""
        self.load()
        assert self._files is not None
        found = self._files.get(rel)
        if found is None:
            raise NotFound(f"no file {rel[:100]!r} in the GUI", hint="the GUI's files are served from /")
        return found

    def prefixed(self, rel: str) -> Optional[str]:
        """ "a/<tag>/js/app.js" -> "js/app.js"; None when `rel` is not under the prefix at all.

        NotFound for another build's tag (the page is older than the daemon: reload it)."""
        head, sep, rest = rel.partition("/")
        if head != PREFIX or not sep:
            return None
        tag, sep, path = rest.partition("/")
        if tag != self.tag:
            raise NotFound(
                f"no GUI build {tag[:40]!r} here (this daemon serves {self.tag})",
                hint="reload the page: the dashboard was updated",
            )
        if not sep or not path:
            raise NotFound(f"no file {rel[:100]!r}", hint=f"files live under /{PREFIX}/{self.tag}/<path>")
        return path
