"""Files that ride inside the package: the GUI (`web_assets/`) and the connectors.

Works the same from the zipapp, from an extraction and from a source checkout
(`importlib.resources.files("alter")`).  build.py copies the top-level `web/`
folder to `alter/web_assets/` in the zipapp; in a source checkout, where that
folder does not exist, the GUI is read from `web/` beside the package.

    read_web("index.html") -> bytes       list_web() -> ["app.js", "index.html", ...]
    read_connector("apm.py") -> bytes     list_connectors() -> [...]
"""

from __future__ import annotations

import os
from importlib.resources import files
from typing import Any, List

from alter.errors import NotFound


def _clean(path: str, what: str) -> List[str]:
    """Split a relative '/'-path, refusing anything that could leave the folder."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or path.startswith("/") or any(p == ".." for p in parts):
        raise NotFound(f"{what} {path!r} does not exist", hint="use a path relative to the folder, without '..'")
    return parts


def _web_root() -> Any:
    """The Traversable holding the GUI files."""
    bundled = files("alter").joinpath("web_assets")
    if bundled.is_dir():
        return bundled
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(os.path.dirname(here), "web")  # source checkout: <repo>/web
    if os.path.isdir(source):
        import pathlib

        return pathlib.Path(source)
    return bundled


def _read(root: Any, path: str, what: str, lister: str) -> bytes:
    node = root
    for part in _clean(path, what):
        node = node.joinpath(part)
    if not node.is_file():
        raise NotFound(f"{what} {path!r} does not exist", hint=f"alter.resources.{lister}() lists what ships")
    data: bytes = node.read_bytes()
    return data


def _walk(root: Any, prefix: str = "") -> List[str]:
    out: List[str] = []
    if not root.is_dir():
        return out
    for child in root.iterdir():
        name = child.name
        if name.startswith(".") or name == "__pycache__":
            continue
        if child.is_dir():
            out += _walk(child, f"{prefix}{name}/")
        else:
            out.append(prefix + name)
    return out


def read_web(path: str) -> bytes:
    """Bytes of one GUI file, e.g. "index.html" or "js/api.js".  Raises NotFound."""
    return _read(_web_root(), path, "web file", "list_web")


def list_web() -> List[str]:
    """Every GUI file, as sorted '/'-separated paths relative to the GUI folder."""
    return sorted(_walk(_web_root()))


def read_connector(name: str) -> bytes:
    """Bytes of one connector file from `alter/connectors/`, e.g. "apm.py".  Raises NotFound."""
    return _read(files("alter").joinpath("connectors"), name, "connector file", "list_connectors")


def list_connectors() -> List[str]:
    """Every connector file, sorted, relative to `alter/connectors/`."""
    return sorted(p for p in _walk(files("alter").joinpath("connectors")) if not p.endswith((".pyc", ".pyo")))
