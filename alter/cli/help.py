"""Help texts, generated from the command table and the option table."""

from __future__ import annotations

from alter import __version__
from alter.cli.commands import COMMAND_LIST, COMMANDS, GROUPS, Command, synopsis
from alter.cli.context import Ctx
from alter.cli.flags import COMMON_FLAGS, Flag, Parsed
from alter.cli.render import Style
from alter.errors import UsageError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, List


TOPICS = ("options", "signals")

ENVIRONMENT = (
    ("APM_SOCKET", "talk to the daemon on this abstract socket name"),
    ("APM_HOME", "keep everything (config, state, logs, socket) under this directory"),
    ("APM_COLOR", "1 forces colour, 0 turns it off"),
    ("NO_COLOR", "no colour (any value)"),
    ("APM_DEBUG", "1: show tracebacks of internal errors"),
)

EXIT_CODES = (
    (0, "success"),
    (1, "other failure"),
    (2, "usage or config error"),
    (3, "not found (worker, file)"),
    (4, "conflict (name taken, file exists)"),
    (5, "permission denied"),
    (6, "daemon unavailable"),
    (7, "worker failed during startup"),
    (8, "protocol error"),
)


def _entry(command: Command) -> str:
    """`update <name>`: the synopsis without apm, flags and notes."""
    text = synopsis(command)[4:]
    for cut in (" [flags]", "   "):
        text = text.split(cut)[0]
    return text


def main_help(style: Style, full: bool = False) -> List[str]:
    lines = [
        f"{style('apm', 'bold')} {__version__} - process manager for Linux",
        "",
        "usage: apm <command> [args] [flags]",
    ]
    shown = [c for c in COMMAND_LIST if full or c.common]
    width = max(len(_entry(c)) for c in shown) + 2
    for group in GROUPS:
        commands = [c for c in shown if c.group == group]
        if not commands:
            continue
        lines += ["", style(group + ":", "bold")]
        for c in commands:
            alias = f" (alias: {', '.join(c.aliases)})" if c.aliases else ""
            lines.append(f"  {_entry(c).ljust(width)}{c.summary}{alias}")
    if full:
        lines += [
            "",
            style("Signals:", "bold"),
            "  apm SIGHUP <name>[#N]     forward any signal to all instances, or instance N (from 1)",
            "",
            style("Global flags:", "bold"),
        ]
        lines += [f"  {_flag_text(f).ljust(26)}{f.help}" for f in COMMON_FLAGS]
        lines += ["  -v, --version             print the CLI and daemon versions"]
        lines += ["", style("Environment:", "bold")]
        lines += [f"  {name.ljust(26)}{text}" for name, text in ENVIRONMENT]
        lines += ["", style("Exit codes:", "bold")]
        lines += [f"  {str(code).ljust(26)}{text}" for code, text in EXIT_CODES]
        lines += ["", "The first command starts the daemon when none runs (`apm exit daemon` stops it)."]
    lines += [
        "",
        "Run `apm help <command>` for its flags and examples"
        + ("." if full else ", `apm --help --full` for every command."),
    ]
    return lines


def _flag_text(flag: Flag) -> str:
    text = (flag.short + ", " if flag.short else "") + "--" + flag.name
    return text + (f" {flag.value}" if flag.value else "")


def _metavar(option: Any) -> str:
    kind = option.kind.name
    return {
        "BOOL": "[BOOL]",
        "INT": "N",
        "FLOAT": "NUM",
        "DURATION": "MS",
        "SIZE": "SIZE",
        "LIST": "VALUE",
        "INTLIST": "N",
        "ENUM": "|".join(option.choices) or "CHOICE",
    }.get(kind, "TEXT" if option.name not in ("name", "path", "user") else option.name.upper())


def _default_text(option: Any) -> str:
    from alter.cli.info import format_option_value

    if option.default in (None, [], ""):
        return ""
    return f" (default: {format_option_value(option, option.default)})"


def option_help(style: Style) -> List[str]:
    from alter.config.options import WORKER_OPTIONS_LIST

    lines = [
        style("Worker options", "bold") + " - flags of `apm run` / `apm update`, fields of a worker { } block.",
        "  --name=x and --name x both work; --restart-err = --restart_err; a boolean works bare",
        "  (--restart) or with a value (--restart false); list options repeat or take commas.",
    ]
    section = ""
    for option in WORKER_OPTIONS_LIST:
        if not option.cli:
            continue
        if option.section != section:
            section = option.section
            lines += ["", "  " + style(section, "cyan")]
        flag = f"--{option.name} {_metavar(option)}"
        repeat = " (repeatable)" if option.multiple else ""
        lines.append(f"    {flag.ljust(34)}{option.help}{repeat}{style(_default_text(option), 'dim')}")
    return lines


def signal_help(style: Style) -> List[str]:
    from alter.cli.signals import signal_names

    return [
        style("Signals", "bold") + " - forward a signal to a worker's processes:",
        "  apm SIGHUP api          all instances of api",
        "  apm SIGUSR1 api#2       instance 2 only (instances are numbered from 1)",
        "  apm HUP api             the SIG prefix is optional in upper case",
        "  apm signal term api     any case, or a number: apm signal 10 api",
        "",
        "Known names: " + " ".join(signal_names()) + " SIGRTMIN+N SIGRTMAX-N",
    ]


def option_summary(style: Style) -> List[str]:
    """Option flag names by section, a few per line (`apm help run`; --full shows the table)."""
    from alter.config.options import WORKER_OPTIONS_LIST

    sections: dict = {}
    for option in WORKER_OPTIONS_LIST:
        if option.cli:
            sections.setdefault(option.section, []).append("--" + option.name)
    width = max(len(name) for name in sections) + 2
    lines = [style("Worker options:", "bold") + " (`apm help options` or --help --full describes each)"]
    for section, flags in sections.items():
        lines.append(f"  {(section + ':').ljust(width)}{' '.join(flags)}")
    return lines


def command_help(command: Command, style: Style, full: bool = False) -> List[str]:
    lines = [f"usage: {synopsis(command)}", "", command.summary + "."]
    if command.aliases:
        lines.append(f"Alias: {', '.join('apm ' + a for a in command.aliases)}")
    if command.description:
        lines += ["", command.description]
    if command.raw:
        lines += ["", "Flags are passed on untouched; see the command's own --help."]
    flags = list(command.flags) + [f for f in COMMON_FLAGS if f.name != "json" or command.json]
    if not command.raw:
        lines += ["", style("Flags:", "bold")]
        lines += [f"  {_flag_text(f).ljust(24)}{f.help}" for f in flags]
    if command.options:
        lines += ["", *(option_help(style) if full else option_summary(style))]
    if command.examples:
        lines += ["", style("Examples:", "bold")]
        lines += [f"  $ {e}" for e in command.examples]
    return lines


def cmd_help(ctx: Ctx, p: Parsed) -> int:
    topic = p.positionals[0] if p.positionals else ""
    ctx.lines(help_for(topic, ctx.style, full=bool(p.flag("full"))))
    return 0


def help_for(topic: str, style: Style, full: bool = False) -> List[str]:
    if not topic:
        return main_help(style, full)
    if topic == "options":
        return option_help(style)
    if topic == "signals":
        return signal_help(style)
    command = COMMANDS.get(topic)
    if command is None:
        import difflib

        close = difflib.get_close_matches(topic, list(COMMANDS) + list(TOPICS), n=3, cutoff=0.6)
        raise UsageError(
            f"no help for {topic!r}: not a command or topic",
            hint=("did you mean " + " or ".join(close) + "? " if close else "")
            + "commands: "
            + ", ".join(c.name for c in COMMAND_LIST)
            + "; topics: "
            + ", ".join(TOPICS),
        )
    return command_help(command, style, full)
