"""`apm` entry point: `main(argv) -> exit code`.

    apm [global flags] <command> [args] [flags]

Global flags before the command: -h/--help [--full], -v/--version, --json,
--color/--no-color.  A signal name as the command (`apm SIGHUP api`) forwards
it.  Errors print as `apm: <message>` + `  hint: ...` and exit with the
error's code (docs/cli.md, "Exit codes"); an unexpected exception prints one
line and exits 1 (APM_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import os
import sys

from alter.cli.commands import COMMAND_LIST, COMMANDS, HABITS, Command, find, synopsis
from alter.cli.context import Ctx
from alter.cli.flags import Parsed, parse
from alter.errors import ApmError, NotFound, PermissionDenied, UsageError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import List, Optional


GLOBAL_FLAGS = ("-h", "--help", "--full", "-v", "-V", "--version", "--json", "--color", "--no-color")


def main(argv: List[str], ctx: Optional[Ctx] = None) -> int:
    ctx = ctx or Ctx()
    try:
        code = run(ctx, list(argv))
        ctx.out.flush()
        return code
    except ApmError as err:
        ctx.error(err)
        return err.exit_code
    except KeyboardInterrupt:
        ctx.eprint("")
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except Exception as exc:  # the CLI never shows a traceback unless asked
        if ctx.env.get("APM_DEBUG"):
            import traceback

            traceback.print_exc(file=ctx.err)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        ctx.eprint(f"apm: internal error: {type(exc).__name__}{': ' + first if first else ''}")
        if not ctx.env.get("APM_DEBUG"):
            ctx.eprint("  run with APM_DEBUG=1 for details")
        return 1


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run(ctx: Ctx, argv: List[str]) -> int:
    # Global flags before the command word.
    lead: List[str] = []
    while argv and argv[0].startswith("-") and argv[0] != "--":
        word = argv.pop(0)
        if word not in GLOBAL_FLAGS:
            raise _unknown_global(word)
        lead.append(word)
    _apply_color(ctx, lead)
    if any(w in ("-v", "-V", "--version") for w in lead):
        return dispatch(ctx, COMMANDS["version"], [w for w in lead if w not in ("-v", "-V", "--version")] + argv)
    if not argv or any(w in ("-h", "--help") for w in lead):
        from alter.cli.help import help_for

        topic = argv[0] if argv and not argv[0].startswith("-") else ""
        ctx.lines(help_for(topic, ctx.style, full="--full" in lead or "--full" in argv))
        return 0
    word = argv.pop(0)
    command = find(word)
    if command is None:
        from alter.cli.signals import normalize_signal

        if word != "--" and normalize_signal(word) is not None:
            command = find("signal")
            argv = [word, *argv]
        else:
            raise unknown_command(word)
    assert command is not None
    return dispatch(ctx, command, [w for w in lead if w not in ("-h", "--help")] + argv)


def _apply_color(ctx: Ctx, words: List[str]) -> None:
    for word in words:
        if word == "--":
            return
        if word == "--color":
            ctx.set_color(True)
        elif word == "--no-color":
            ctx.set_color(False)


def dispatch(ctx: Ctx, command: Command, words: List[str]) -> int:
    if command.raw:
        return command.handler(ctx, words)
    parsed = parse(command, words)
    _apply_color(ctx, words)
    ctx.json = bool(parsed.flag("json"))
    if parsed.flag("help"):
        from alter.cli.help import command_help

        ctx.lines(command_help(command, ctx.style, full=bool(parsed.flag("full"))))
        return 0
    check_positionals(ctx, command, parsed)
    try:
        return command.handler(ctx, parsed)
    except NotFound as err:
        _suggest_worker(ctx, command, parsed, err)
        raise
    except PermissionDenied as err:
        if command.write and not err.hint:
            err.hint = "ask an administrator to add you to the apm group (usermod -aG apm $USER), or use sudo"
        raise


def check_positionals(ctx: Ctx, command: Command, parsed: Parsed) -> None:
    given = parsed.positionals
    required = [a for a in command.args if a.required]
    if len(given) < len(required):
        missing = required[len(given)]
        hint = f"usage: {synopsis(command)}"
        if missing.name in ("name", "target") and command.name != "run":
            names = worker_names(ctx)
            if names:
                hint += "; workers: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise UsageError(f"missing {missing.help} for `apm {command.name}`", hint=hint)
    variadic = bool(command.args) and command.args[-1].many
    if not command.rest and not variadic and len(given) > len(command.args):
        extra = given[len(command.args)]
        hint = f"usage: {synopsis(command)}"
        if extra.startswith("-"):
            hint += "; to pass it as a value, write it after `--`"
        raise UsageError(f"unexpected argument {extra!r} for `apm {command.name}`", hint=hint)


def worker_names(ctx: Ctx) -> List[str]:
    """Names of the running daemon's workers, for hints; [] when it cannot tell (never autostarts)."""
    try:
        result = ctx.call("list", autostart=False, timeout=3.0)
        return [str(w.get("name")) for w in result.get("workers", []) if isinstance(w, dict)]
    except (ApmError, AttributeError, TypeError):
        return []


def _suggest_worker(ctx: Ctx, command: Command, parsed: Parsed, err: NotFound) -> None:
    if not parsed.positionals or "did you mean" in err.hint:
        return
    import difflib

    wanted = parsed.positionals[-1 if command.name == "signal" else 0].partition("#")[0]
    names = worker_names(ctx)
    if wanted in names:  # the worker exists (e.g. `api#9` is out of range): the daemon's hint says it all
        return
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5)
    if close:
        err.hint = "did you mean " + " or ".join(close) + "?" + (f" ({err.hint})" if err.hint else "")
    elif names and not err.hint:
        err.hint = "workers: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    elif not names and not err.hint:
        err.hint = "there are no workers yet: start one with `apm run <cmd>`"


def unknown_command(word: str) -> UsageError:
    import difflib

    names = [c.name for c in COMMAND_LIST]
    habit = HABITS.get(word.lower())
    if habit:
        return UsageError(f"unknown command {word!r}", hint=f"apm calls it `apm {habit}`")
    if word.startswith("-"):
        return _unknown_global(word)
    words = names + [a for c in COMMAND_LIST for a in c.aliases]
    close = difflib.get_close_matches(word.lower(), words, n=3, cutoff=0.6)
    hint = ("did you mean " + " or ".join(close) + "? " if close else "") + "commands: " + ", ".join(names)
    return UsageError(f"unknown command {word!r}", hint=hint + " (`apm --help`)")


def _unknown_global(word: str) -> UsageError:
    import difflib

    close = difflib.get_close_matches(word.partition("=")[0], GLOBAL_FLAGS, n=2, cutoff=0.6)
    hint = (
        "did you mean " + " or ".join(close) + "? " if close else ""
    ) + "options go after the command: apm <command> [args] [flags]"
    return UsageError(f"unknown option {word}", hint=hint)
