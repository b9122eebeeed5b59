"""CLI commands for logs: `apm log`, `apm grep`, `apm flush`, `apm alerts`, `apm events` (entries of the command table).

The handlers live in logview.py (grep: grepcmd.py) and are imported only when one of these commands runs.
"""

from __future__ import annotations

from alter.cli.flags import Arg, Flag
from alter.cli.table import Command

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Callable

    from alter.cli.context import Ctx
    from alter.cli.flags import Parsed


def _lazy(name: str) -> Callable[[Ctx, Parsed], int]:
    def handler(ctx: Ctx, parsed: Parsed) -> int:
        from alter.cli import logview

        fn: Any = getattr(logview, name)
        return int(fn(ctx, parsed))

    handler.__name__ = name
    return handler


def _grep(ctx: Ctx, parsed: Parsed) -> int:
    from alter.cli import grepcmd  # the search engine (alter/grepcore.py) loads only for `apm grep`

    return int(grepcmd.cmd_grep(ctx, parsed))


LINES = Flag(
    "lines", "past lines to show first (default 20; every line of --since, up to 100000)", value="N", short="-n"
)

COMMANDS: tuple[Command, ...] = (
    Command(
        "log",
        "Show a worker's recent output, then follow it live (Ctrl+C ends)",
        _lazy("cmd_log"),
        aliases=("logs",),
        group="Inspection",
        args=(Arg("target", "worker name, or name#N for one instance", many=True),),
        flags=(
            LINES,
            Flag("no-follow", "print the past lines and exit"),
            Flag("err", "stderr only"),
            Flag("out", "stdout only"),
            Flag("since", "from this time on: 10m, 2h, 14:05, '2026-11-21 14:05', or epoch seconds", value="TIME"),
        ),
        json=True,
        usage="apm log <name|name#N>... [-n N] [--no-follow] [--err|--out] [--since TIME]",
        description=(
            "Replays the last lines from the log files (and from memory, for lines a full disk kept out of "
            "them), then prints new lines as they arrive. Several workers are interleaved in time order. "
            "Lines look as in the files: timestamp, prefix (name#N), `|` stdout, `!` stderr, `*` apm. "
            "Colour on a terminal; --json prints one line object per line."
        ),
        examples=(
            "apm log api",
            "apm log api web -n 100",
            "apm log api#2 --err --since 10m --no-follow",
            "apm log api --json | jq -r .text",
        ),
    ),
    Command(
        "grep",
        "Search worker logs (current and rotated files) with a regular expression",
        _grep,
        group="Inspection",
        args=(Arg("pattern", "regular expression (Python syntax)"), Arg("name", "worker name", required=False)),
        flags=(
            Flag("ignore-case", "ASCII letters match either case", short="-i"),
            Flag("context", "lines of context around each match", value="N", short="-C"),
            Flag("max", "stop after N matches (default 1000; 0: no limit)", value="N"),
            Flag("raw", "match the file bytes as written, colour codes included (faster on coloured files)"),
        ),
        json=True,
        usage="apm grep <pattern> [name] [-i] [-C N] [--max N]",
        description=(
            "Searches every worker (or one) from its oldest file to the current one. The pattern matches "
            "the lines as you read them (without colour codes). Output is grep's: worker/file:line:text. "
            "Exit status 1 when nothing matched."
        ),
        examples=("apm grep 'ERROR|FATAL'", "apm grep -i timeout api -C 2", "apm grep 'api#2 ! ' --max 50"),
    ),
    Command(
        "flush",
        "Empty a worker's logs (current file truncated, rotated files deleted)",
        _lazy("cmd_flush"),
        group="Inspection",
        args=(Arg("name", "worker name, or all"),),
        json=True,
        examples=("apm flush api", "apm flush all"),
    ),
    Command(
        "alerts",
        "Log alerts: regular expressions that raise an event when a line matches",
        _lazy("cmd_alerts"),
        group="Inspection",
        args=(
            Arg("action", "list, set, rm, enable or disable", required=False),
            Arg("name", "alert name", required=False),
            Arg("regex", "regular expression (for set)", required=False),
        ),
        flags=(
            Flag("cooldown", "quiet time per worker after the alert fired (default 60s)", value="TIME"),
            Flag("ignore-case", "ASCII letters match either case", short="-i"),
            Flag("channel", "where it goes: app (default), telegram, both", value="CHANNEL"),
        ),
        json=True,
        common=False,
        usage="apm alerts [list | set NAME REGEX [--cooldown TIME] [-i] | rm NAME | enable NAME | disable NAME]",
        description=(
            "An alert runs over every worker's stdout and stderr; a match publishes a `log.alert` event "
            "(`apm events`, the GUI, notifications), then the alert is quiet for that worker for its cooldown."
        ),
        examples=("apm alerts set errors 'ERROR|FATAL' --cooldown 5m", "apm alerts disable errors", "apm alerts"),
    ),
    Command(
        "events",
        "Print daemon events as they happen: state changes, crashes, log alerts, log errors",
        _lazy("cmd_events"),
        group="Inspection",
        flags=(
            Flag("kind", "only these kinds or prefixes (log.alert, instance.); repeatable", value="KIND", repeat=True),
            Flag("lines", "recent events to show first (default 0; 100 with --no-follow)", value="N", short="-n"),
            Flag("no-follow", "print recent events and exit"),
        ),
        json=True,
        common=False,
        usage="apm events [--kind KIND]... [-n N] [--no-follow]",
        examples=("apm events --kind log.alert", "apm events --kind instance.crash --json"),
    ),
)
