"""Log alerts (alter's Settings → Log Alerts): regex patterns raising `log.alert` events.

One `LogAlerts` per daemon, shared by every `WorkerLog`.  An alert is
`{"name", "pattern", "cooldown_ms", "enabled", "ignore_case", "channel"}`;
only `pattern` is required.  Each pattern is compiled once as a MULTILINE bytes
regex and run over a whole read chunk (not line by line).  While an alert is
cooling down for a worker its regex is not even run for that worker, so
noisy output costs nothing.  Cooldown is per (alert, worker) and measured on
the loop's monotonic clock.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Pattern, Tuple

from alter.errors import ConfigError
from alter.logs.colors import strip_ansi

DEFAULT_COOLDOWN_MS = 60_000
CHANNELS = ("app", "telegram", "both")
MAX_LINE_IN_EVENT = 4096

Publish = Callable[[str, Dict[str, Any]], None]


@dataclass
class Alert:
    name: str
    pattern: str
    regex: Pattern[bytes]
    cooldown: float  # seconds
    enabled: bool
    ignore_case: bool
    channel: str

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "pattern": self.pattern,
            "cooldown_ms": int(self.cooldown * 1000),
            "enabled": self.enabled,
            "ignore_case": self.ignore_case,
            "channel": self.channel,
        }


def compile_alert(spec: Dict[str, Any]) -> Alert:
    """Validate one alert definition; raises ConfigError naming what is wrong."""
    if not isinstance(spec, dict):
        raise ConfigError(f"log alert {spec!r} is not an object", hint='write {"pattern": "ERROR|OOM"}')
    pattern = spec.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(
            f"log alert {spec.get('name') or spec!r} has no pattern", hint="set pattern to a regular expression"
        )
    ignore_case = bool(spec.get("ignore_case", False))
    try:
        regex = re.compile(pattern.encode("utf-8"), re.MULTILINE | (re.IGNORECASE if ignore_case else 0))
    except re.error as exc:
        raise ConfigError(
            f"log alert pattern {pattern!r} is not a valid regular expression: {exc}",
            hint="fix the regex (Python syntax)",
        ) from None
    cooldown_ms = spec.get("cooldown_ms", DEFAULT_COOLDOWN_MS)
    if isinstance(cooldown_ms, bool) or not isinstance(cooldown_ms, (int, float)) or cooldown_ms < 0:
        raise ConfigError(
            f"log alert {pattern!r}: cooldown_ms {cooldown_ms!r} is not a number of milliseconds >= 0",
            hint="e.g. 60000",
        )
    channel = spec.get("channel", "app")
    if channel not in CHANNELS:
        raise ConfigError(
            f"log alert {pattern!r}: channel {channel!r} is not one of {', '.join(CHANNELS)}",
            hint="app = the dashboard's notifications, telegram = the Telegram bot, both = the two",
        )
    return Alert(
        name=str(spec.get("name") or pattern),
        pattern=pattern,
        regex=regex,
        cooldown=float(cooldown_ms) / 1000.0,
        enabled=bool(spec.get("enabled", True)),
        ignore_case=ignore_case,
        channel=channel,
    )


def line_around(block: bytes, pos: int) -> bytes:
    start = block.rfind(b"\n", 0, pos) + 1
    end = block.find(b"\n", pos)
    return block[start : end if end >= 0 else len(block)]


class LogAlerts:
    def __init__(
        self, alerts: Optional[List[Dict[str, Any]]] = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self._alerts: List[Alert] = []
        self._active: List[Alert] = []
        self._until: Dict[Tuple[str, str], float] = {}  # (alert name, worker) -> monotonic time the cooldown ends
        self.fired = 0
        if alerts:
            self.set_alerts(alerts)

    def set_alerts(self, alerts: List[Dict[str, Any]]) -> None:
        """Replace the alert list (all validated first: a bad one changes nothing)."""
        compiled = [compile_alert(spec) for spec in alerts]
        names = [a.name for a in compiled]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"log alert names must be unique; repeated: {dupes}", hint="give each alert its own name")
        self._alerts = compiled
        self._active = [a for a in compiled if a.enabled]
        keep = set(names)
        self._until = {k: v for k, v in self._until.items() if k[0] in keep}

    def alerts(self) -> List[Dict[str, Any]]:
        return [a.to_dict() for a in self._alerts]

    @property
    def active(self) -> bool:
        return bool(self._active)

    def scan(self, worker: str, index: int, stream: str, ts: float, block: bytes, publish: Optional[Publish]) -> int:
        """Run every enabled, not-cooling-down alert over one chunk; returns alerts fired."""
        if not self._active:
            return 0
        now = self.clock()
        fired = 0
        for alert in self._active:
            key = (alert.name, worker)
            until = self._until.get(key)
            if until is not None and now < until:
                continue
            m = alert.regex.search(block)
            if m is None:
                continue
            self._until[key] = now + alert.cooldown
            fired += 1
            line = strip_ansi(line_around(block, m.start()))[:MAX_LINE_IN_EVENT].decode("utf-8", "replace")
            if publish is not None:
                publish(
                    "log.alert",
                    {
                        "worker": worker,
                        "index": index,
                        "stream": stream,
                        "ts": ts,
                        "name": alert.name,
                        "pattern": alert.pattern,
                        "channel": alert.channel,
                        "line": line,
                    },
                )
        self.fired += fired
        return fired

    def forget(self, worker: str) -> None:
        """Drop cooldown state of a removed worker."""
        self._until = {k: v for k, v in self._until.items() if k[1] != worker}
