"""GUI settings (Settings → General / UI / Security): one table, validated, persisted.

Every setting is declared once in `SETTINGS` (section, key, kind, default,
limits, help); the API serves the table (`GET /api/v1/settings/schema`) so the
page builds its forms from it.  Values live in `<state_dir>/settings.json`
(0600).  Secrets (password, PIN, tokens) are not settings: they live in
auth.json (see auth.py).

Thread-safe: the HTTP threads read and write through a lock.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from alter.errors import UsageError
from alter.web.store import JsonFile

_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_TARGET = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$")
COLUMNS = ("pid", "namespace", "instances", "uptime", "cpu", "cpu_graph", "memory", "restarts", "errors", "origin")


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    kind: str  # bool | int | str | enum | color | list
    default: Any
    help: str
    minimum: Optional[int] = None
    maximum: Optional[int] = None
    choices: Tuple[str, ...] = ()
    also: Tuple[int, ...] = ()  # extra allowed ints outside [minimum, maximum] (0 = off)
    check: Optional[Callable[[Any], Optional[str]]] = field(default=None, compare=False)


def _targets(value: Any) -> Optional[str]:
    if not isinstance(value, list) or len(value) > 8:
        return "a list of at most 8 host:port strings"
    for item in value:
        m = _TARGET.match(item) if isinstance(item, str) else None
        if m is None or not 1 <= int(m.group(2)) <= 65535:
            return f"host:port strings (got {item!r})"
    return None


def _columns(value: Any) -> Optional[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v in COLUMNS for v in value):
        return "a list of column names from: " + ", ".join(COLUMNS)
    if len(set(value)) != len(value):
        return "a list without repeats"
    return None


SETTINGS: List[Setting] = [
    Setting("general", "auto_refresh", "bool", True, "Update the pages live."),
    Setting("general", "refresh_interval", "int", 2, "Seconds between process list refreshes (1-60).", 1, 60),
    Setting("general", "health_interval", "int", 5, "Seconds between daemon connection checks (1-60).", 1, 60),
    Setting("general", "confirm_delete", "bool", True, "Ask before deleting a worker."),
    Setting("general", "confirm_shutdown", "bool", True, "Ask before shutting the daemon down."),
    Setting("general", "confirm_stop", "bool", False, "Ask before stopping or restarting a worker."),
    Setting("general", "tail_lines", "int", 200, "Log lines loaded when a log opens (50-5000).", 50, 5000),
    Setting("general", "default_namespace", "str", "", "Namespace pre-filled when creating a worker.", 0, 64),
    Setting(
        "general",
        "latency_targets",
        "list",
        ["8.8.8.8:443", "1.1.1.1:443", "9.9.9.9:443"],
        "host:port targets of the Server → Internet latency card (TCP connect time).",
        check=_targets,
    ),
    Setting("ui", "theme", "enum", "system", "Colour theme.", choices=("dark", "light", "system")),
    Setting("ui", "accent", "color", "#3b82f6", "Accent colour (#rrggbb)."),
    Setting("ui", "font_size", "int", 14, "Base font size in pixels (10-24).", 10, 24),
    Setting("ui", "compact", "bool", False, "Denser rows and less padding."),
    Setting("ui", "view_mode", "enum", "table", "Process list view.", choices=("table", "card")),
    Setting(
        "ui",
        "columns",
        "list",
        ["namespace", "instances", "uptime", "cpu", "cpu_graph", "memory", "restarts", "errors"],
        "Columns of the table view, in order.",
        check=_columns,
    ),
    Setting(
        "security",
        "lock_timeout",
        "int",
        900,
        "Lock the dashboard after this many seconds without activity; 0 = never. "
        "The page offers 5 min to 1 h; the server accepts 1-3600.",
        1,
        3600,
        also=(0,),
    ),
]

TABLE: Dict[Tuple[str, str], Setting] = {(s.section, s.key): s for s in SETTINGS}
SECTIONS = ("general", "ui", "security")


def defaults() -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {s: {} for s in SECTIONS}
    for s in SETTINGS:
        out[s.section][s.key] = copy.deepcopy(s.default)
    return out


def schema() -> Dict[str, Any]:
    items = []
    for s in SETTINGS:
        entry: Dict[str, Any] = {
            "section": s.section,
            "key": s.key,
            "type": s.kind,
            "default": s.default,
            "help": s.help,
        }
        if s.minimum is not None:
            entry["minimum"] = s.minimum
        if s.maximum is not None:
            entry["maximum"] = s.maximum
        if s.choices:
            entry["choices"] = list(s.choices)
        if s.also:
            entry["also"] = list(s.also)
        if s.key == "columns":
            entry["choices"] = list(COLUMNS)
        items.append(entry)
    return {"settings": items}


def validate(setting: Setting, value: Any) -> Any:
    """The clean value, or UsageError naming the setting, the value and what is allowed."""
    name = f"{setting.section}.{setting.key}"
    problem: Optional[str] = None
    if setting.kind == "bool":
        if not isinstance(value, bool):
            problem = "true or false"
    elif setting.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            problem = "a whole number"
        elif value not in setting.also and not (
            (setting.minimum is None or value >= setting.minimum)
            and (setting.maximum is None or value <= setting.maximum)
        ):
            extra = " or " + " or ".join(str(a) for a in setting.also) if setting.also else ""
            problem = f"between {setting.minimum} and {setting.maximum}{extra}"
    elif setting.kind == "str":
        if not isinstance(value, str) or (setting.maximum is not None and len(value) > setting.maximum):
            problem = f"a string of at most {setting.maximum} characters"
    elif setting.kind == "enum":
        if value not in setting.choices:
            problem = "one of " + ", ".join(setting.choices)
    elif setting.kind == "color" and (not isinstance(value, str) or not _HEX_COLOR.match(value)):
        problem = "a colour like #3b82f6"
    if problem is None and setting.check is not None:
        problem = setting.check(value)
    if problem is not None:
        shown = repr(value) if len(repr(value)) < 80 else repr(value)[:77] + "..."
        raise UsageError(
            f"setting {name} must be {problem}, got {shown}", hint="GET /api/v1/settings/schema lists them"
        )
    return copy.deepcopy(value)


class Settings:
    def __init__(self, path: str) -> None:
        self.file = JsonFile(path)
        self._lock = threading.Lock()
        self._values = defaults()
        self._listeners: List[Callable[[Dict[str, Dict[str, Any]]], None]] = []
        stored = self.file.load()
        for (section, key), setting in TABLE.items():
            raw = stored.get(section, {}).get(key) if isinstance(stored.get(section), dict) else None
            if raw is None:
                continue
            try:
                self._values[section][key] = validate(setting, raw)
            except UsageError:
                pass  # an out-of-range stored value falls back to the default

    def all(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._values)

    def get(self, section: str, key: str) -> Any:
        with self._lock:
            return copy.deepcopy(self._values[section][key])

    def on_change(self, callback: Callable[[Dict[str, Dict[str, Any]]], None]) -> None:
        self._listeners.append(callback)

    def update(self, changes: Any) -> Dict[str, Dict[str, Any]]:
        """Apply `{"general": {...}, "ui": {...}, "security": {...}}` (all or nothing); returns every value."""
        if not isinstance(changes, dict):
            raise UsageError("settings must be an object of sections", hint='e.g. {"ui": {"theme": "dark"}}')
        clean: List[Tuple[str, str, Any]] = []
        for section, values in changes.items():
            if section not in SECTIONS:
                raise UsageError(f"unknown settings section {section!r}", hint="sections: " + ", ".join(SECTIONS))
            if not isinstance(values, dict):
                raise UsageError(f"settings section {section!r} must be an object")
            for key, value in values.items():
                setting = TABLE.get((section, key))
                if setting is None:
                    known = ", ".join(k for (s, k) in TABLE if s == section)
                    raise UsageError(f"unknown setting {section}.{key}", hint=f"{section} settings: {known}")
                clean.append((section, key, validate(setting, value)))
        with self._lock:
            for section, key, value in clean:
                self._values[section][key] = value
            snapshot = copy.deepcopy(self._values)
            self.file.save(snapshot)
        for listener in list(self._listeners):
            listener(snapshot)
        return snapshot
