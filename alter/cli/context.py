"""What every command handler gets: output streams, colour, the daemon client."""

from __future__ import annotations

import os
import sys

from alter.cli.render import Style, color_wanted, supports_unicode, terminal_width
from alter.errors import ApmError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import IO, Any, Dict, List, Mapping, Optional


class Ctx:
    """Per-invocation state.  Tests build one with StringIO streams and a fake env."""

    def __init__(
        self,
        out: Optional[IO[str]] = None,
        err: Optional[IO[str]] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.json = False
        self.color_flag: Optional[bool] = None
        self._paths: Any = None
        self._style: Optional[Style] = None
        self._err_style: Optional[Style] = None

    # ------------------------------------------------------------------ output

    def set_color(self, flag: Optional[bool]) -> None:
        self.color_flag = flag
        self._style = self._err_style = None

    @property
    def style(self) -> Style:
        if self._style is None:
            self._style = Style(color_wanted(self.out, self.env, self.color_flag), supports_unicode(self.out))
        return self._style

    @property
    def err_style(self) -> Style:
        if self._err_style is None:
            self._err_style = Style(color_wanted(self.err, self.env, self.color_flag), supports_unicode(self.err))
        return self._err_style

    @property
    def width(self) -> Optional[int]:
        return terminal_width(self.out, self.env)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def lines(self, lines: List[str]) -> None:
        if lines:
            self.out.write("\n".join(lines) + "\n")

    def eprint(self, text: str = "") -> None:
        self.err.write(text + "\n")

    def progress(self, text: str) -> None:
        """Progress goes to stdout for people, to stderr when stdout carries JSON."""
        (self.err if self.json else self.out).write(text + "\n")
        (self.err if self.json else self.out).flush()

    def emit_json(self, data: Any) -> None:
        import json  # only --json needs it: `import json` costs every other command ~5 ms (it imports `re`)

        self.out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def error(self, err: ApmError) -> None:
        s = self.err_style
        prefix = "apm: " + (s("error:", "red", "bold") + " " if s.enabled else "")
        self.err.write(prefix + err.message + "\n")
        if err.hint:
            self.err.write("  " + s("hint:", "yellow") + " " + err.hint.replace("\n", "\n        ") + "\n")
        self.err.flush()

    # ------------------------------------------------------------------ daemon

    @property
    def paths(self) -> Any:
        if self._paths is None:
            from alter.control.client import select_paths

            self._paths = select_paths(self.env)
        return self._paths

    def client(self, autostart: bool = True, timeout: Optional[float] = -1.0) -> Any:
        from alter.control.client import DEFAULT_TIMEOUT, Client

        return Client(self.paths, autostart=autostart, timeout=DEFAULT_TIMEOUT if timeout == -1.0 else timeout)

    def call(
        self,
        cmd: str,
        args: Optional[Dict[str, Any]] = None,
        autostart: bool = True,
        timeout: Optional[float] = -1.0,
        on_event: Any = None,
    ) -> Any:
        return self.client(autostart=autostart, timeout=timeout).call(cmd, args, on_event=on_event)
