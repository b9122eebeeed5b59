"""The Command record: one entry of the `apm` command table (see commands.py)."""

from __future__ import annotations

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Callable, Tuple

    from alter.cli.flags import Arg, Flag


class Command:
    """One `apm` command (a plain class: typing.NamedTuple would cost the CLI's startup)."""

    __slots__ = (
        "name",
        "summary",
        "handler",
        "group",
        "aliases",
        "args",
        "flags",
        "options",
        "rest",
        "raw",
        "json",
        "write",
        "common",
        "usage",
        "description",
        "examples",
    )

    def __init__(
        self,
        name: str,
        summary: str,
        handler: Callable[..., int],
        group: str = "Process",
        aliases: Tuple[str, ...] = (),
        args: Tuple[Arg, ...] = (),
        flags: Tuple[Flag, ...] = (),
        options: bool = False,
        rest: bool = False,
        raw: bool = False,
        json: bool = False,
        write: bool = True,
        common: bool = True,
        usage: str = "",
        description: str = "",
        examples: Tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.summary = summary
        self.handler = handler
        self.group = group  # heading in `apm --help`
        self.aliases = aliases
        self.args = args  # positional arguments
        self.flags = flags  # the command's own flags
        self.options = options  # takes worker option flags (--instances 4 ...)
        self.rest = rest  # extra words go to the program (run)
        self.raw = raw  # handler gets the words untouched: handler(ctx, argv)
        self.json = json  # takes --json
        self.write = write  # needs write rights on the daemon (root, its user, the apm group)
        self.common = common  # shown by `apm --help` (all are shown by --help --full)
        self.usage = usage  # overrides the generated synopsis
        self.description = description
        self.examples = examples

    def replace(self, **changes: Any) -> Command:
        values = {key: getattr(self, key) for key in self.__slots__}
        values.update(changes)
        return Command(**values)

    def __repr__(self) -> str:
        return f"Command({self.name!r})"
