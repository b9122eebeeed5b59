"""alter/PM2-style JSON ecosystem files: `{"apps": [{...}, ...]}` -> LoadResult.

Fields are mapped exactly as `apm convert` maps them (see alter.config.pm2):
alter's `command` + `args`, PM2's `script`/`interpreter`/`args`, `cwd`,
`namespace`, `instances`, `env` (an object), `autorestart` (default true, as in
PM2: restart + restart_err), and the rest of PM2's fields.  Fields without an
apm equivalent become warnings; a value that cannot be converted is an error
(the worker is kept without it).  Bad JSON is a ConfigError at file:line:col.
YAML ecosystems are not read (no YAML parser in the stdlib): convert them to
JSON first.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

from alter.config.loader import LoadResult, WorkerDef
from alter.config.pm2 import app_to_worker, apps_of
from alter.errors import ConfigError


def parse_json(text: str, filename: str = "<string>") -> Any:
    """json.loads, with errors as ConfigError at file:line:col."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON: {exc.msg}",
            hint="check for a missing comma or quote, or a trailing comma (JSON allows none)",
            where=f"{filename}:{exc.lineno}:{exc.colno}",
        ) from None


def load_json(source: str, filename: Optional[str] = None, cpu_count: Optional[int] = None) -> LoadResult:
    """Load an ecosystem from a path, or from JSON text (text starts with `{` or `[`)."""
    result = LoadResult()
    if source.lstrip().startswith(("{", "[")):
        text, name = source, filename or "<string>"
        origin = os.path.abspath(name) if not name.startswith("<") else name
    else:
        name, origin = source, os.path.abspath(source)
        try:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            result.errors.append(
                ConfigError(f"cannot read ecosystem file {source}: {exc}", hint="check the path", where=source)
            )
            return result
        result.files.append(origin)
    try:
        apps, top_warns = apps_of(parse_json(text, name))
    except ConfigError as exc:
        if not exc.where:
            exc = ConfigError(exc.message, exc.hint, where=name)
        result.errors.append(exc)
        return result
    result.warnings.extend(f"{name}: {w[len('WARN: ') :]}" for w in top_warns)
    positions = _app_positions(text)
    seen: Dict[str, str] = {}
    for index, app in enumerate(apps):
        line, col = positions[index] if index < len(positions) else (1, 1)
        where = f"{name}:{line}:{col}"
        config, warns, errors = app_to_worker(app, index, cpu_count)
        result.warnings.extend(f"{where}: {w[len('WARN: ') :] if w.startswith('WARN: ') else w}" for w in warns)
        result.errors.extend(ConfigError(e, hint="fix the app object", where=where) for e in errors)
        if config is None:
            continue
        if config["name"] in seen:
            result.errors.append(
                ConfigError(
                    f"duplicate worker name {config['name']!r} (first at {seen[config['name']]})",
                    hint="give each app a unique name",
                    where=where,
                )
            )
            continue
        seen[config["name"]] = where
        result.workers.append(WorkerDef(config=config, origin={"file": origin, "line": line}, comments=warns))
    return result


def _app_positions(text: str) -> List[Tuple[int, int]]:
    """(line, col) where each app object starts, for messages; best effort."""
    decoder = json.JSONDecoder()
    try:
        pos = _skip(text, 0)
        if text[pos] == "{":
            pos = _skip(text, pos + 1)
            while text[pos] != "}":
                key, pos = decoder.raw_decode(text, pos)
                pos = _skip(text, _skip(text, pos) + 1)  # past ':'
                if key == "apps" and text[pos] == "[":
                    return _elements(text, pos, decoder)
                _, pos = decoder.raw_decode(text, pos)
                pos = _skip(text, pos)
                if text[pos] == ",":
                    pos = _skip(text, pos + 1)
            return []
        return _elements(text, pos, decoder) if text[pos] == "[" else []
    except (ValueError, IndexError):
        return []


def _elements(text: str, pos: int, decoder: json.JSONDecoder) -> List[Tuple[int, int]]:
    out = []
    pos = _skip(text, pos + 1)
    while text[pos] != "]":
        out.append((text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)))
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
    return out


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
