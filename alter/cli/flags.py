"""Command-line words -> positionals, command flags and worker options.

One small parser for every command (no argparse: it is slow to import and its
messages are poor).  Rules (docs/cli.md, "Flags"):

* `--flag value` and `--flag=value`; `--restart-err` == `--restart_err`.
* A boolean option works bare or with a value (`--restart`, `--restart false`,
  `--restart=no`); bare, it only takes the next word when that word is one of
  true/false/yes/no/on/off.
* List options repeat or take commas (`--server :3000,:3001`); `--env` and
  `--params` keep commas inside a value.
* apm's flags are recognised anywhere before `--`; everything after `--` goes to
  the program verbatim.  An unknown `-x`/`--flag` before `--` is an error that
  suggests `--` and close flag names.
* Values are checked with `options.coerce()` here for early, clear errors; the
  daemon checks them again.
"""

from __future__ import annotations

from alter.errors import UsageError

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    from alter.cli.commands import Command
    from alter.config.options import Option


# Words a bare boolean flag takes from the next position (1/0 are left to the program).
BOOL_WORDS = ("true", "false", "yes", "no", "on", "off")


class Flag:
    """A command's own flag (not a worker option)."""

    __slots__ = ("name", "help", "value", "short", "repeat")

    def __init__(self, name: str, help: str, value: str = "", short: str = "", repeat: bool = False) -> None:
        self.name = name  # canonical, dashes: "no-wait"
        self.help = help
        self.value = value  # metavar when it takes a value; "" for a switch
        self.short = short  # e.g. "-f"
        self.repeat = repeat

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")


class Arg:
    """A positional argument (`many`: the last one may repeat, `apm log api web`)."""

    __slots__ = ("name", "help", "required", "many")

    def __init__(self, name: str, help: str, required: bool = True, many: bool = False) -> None:
        self.name = name  # shown as <name>
        self.help = help
        self.required = required
        self.many = many


COMMON_FLAGS = (
    Flag("json", "print the daemon's reply as JSON (stable schema, see docs/cli.md)"),
    Flag("color", "force colour"),
    Flag("no-color", "no colour (also NO_COLOR=1)"),
    Flag("help", "show help for this command", short="-h"),
    Flag("full", "with --help: show everything"),
)


class Parsed:
    """The result of parsing one command's words."""

    def __init__(self, command: Command) -> None:
        self.command = command
        self.positionals: List[str] = []
        self.flags: Dict[str, Any] = {}  # flag key -> True, a value, or a list of values
        self.options: Dict[str, Any] = {}  # worker option name -> coerced value
        self.program: List[str] = []  # words after `--`
        self.dashdash = False

    def flag(self, key: str, default: Any = None) -> Any:
        return self.flags.get(key, default)


def command_flags(command: Command) -> Dict[str, Flag]:
    table = {f.key: f for f in command.flags}
    for f in COMMON_FLAGS:
        if f.key == "json" and not command.json:
            continue
        table.setdefault(f.key, f)
    return table


def _is_number(word: str) -> bool:
    return word[1:].replace(".", "", 1).isdigit()


def _option_table() -> Dict[str, Option]:
    from alter.config.options import WORKER_OPTIONS

    return WORKER_OPTIONS


def parse(command: Command, words: List[str]) -> Parsed:
    """Parse the words after the command name (see module doc)."""
    parsed = Parsed(command)
    flags = command_flags(command)
    shorts = {f.short: f for f in flags.values() if f.short}
    options = _option_table() if command.options else {}
    raw_options: Dict[str, List[Tuple[str, str]]] = {}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            parsed.dashdash = True
            parsed.program = list(words[i:])
            break
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            key = name.lower().replace("-", "_")
            flag = flags.get(key)
            if flag is not None:
                i = _take_flag(parsed, flag, word, value if eq else None, words, i)
                continue
            option = options.get(key)
            if option is not None and option.cli:
                if not eq:
                    if option.kind.name == "BOOL":
                        if i < len(words) and words[i].lower() in BOOL_WORDS:
                            value = words[i]
                            i += 1
                        else:
                            value = "true"
                    else:
                        if i >= len(words) or (words[i].startswith("--") and len(words[i]) > 2) or words[i] == "--":
                            raise UsageError(f"{word} needs a value", hint=_option_hint(option))
                        value = words[i]
                        i += 1
                raw_options.setdefault(option.name, []).append((word, value))
                continue
            raise unknown_flag(command, word, key, parsed, words, i - 1, flags, options)
        if word.startswith("-") and len(word) > 1 and not _is_number(word):
            flag = shorts.get(word)
            if flag is not None:
                i = _take_flag(parsed, flag, word, None, words, i)
                continue
            joined = shorts.get(word[:2])
            if joined is not None and joined.value:  # `-n50`, `-C2`: a short flag with its value attached
                i = _take_flag(parsed, joined, word[:2], word[2:], words, i)
                continue
            if command.rest and parsed.positionals:
                # `apm run sh -c '...'`: short options after the program name are the program's
                # (apm's own flags are all --long), so only an unknown --flag needs `--`.
                parsed.positionals.append(word)
                continue
            raise unknown_flag(command, word, word.lstrip("-").lower(), parsed, words, i - 1, flags, options)
        parsed.positionals.append(word)
    for name, values in raw_options.items():
        parsed.options[name] = coerce_flag(options[name], values)
    return parsed


def _take_flag(parsed: Parsed, flag: Flag, word: str, value: Optional[str], words: List[str], i: int) -> int:
    if not flag.value:
        if value is not None:
            raise UsageError(f"--{flag.name} takes no value (got {word!r})", hint=f"write just --{flag.name}")
        parsed.flags[flag.key] = True
        return i
    if value is None:
        if i >= len(words) or words[i] == "--" or (words[i].startswith("--") and len(words[i]) > 2):
            raise UsageError(f"{word} needs a value", hint=f"--{flag.name} {flag.value}: {flag.help}")
        value = words[i]
        i += 1
    if flag.repeat:
        parsed.flags.setdefault(flag.key, []).append(value)
    elif flag.key in parsed.flags:
        raise UsageError(f"--{flag.name} given twice", hint="give it once")
    else:
        parsed.flags[flag.key] = value
    return i


def _option_hint(option: Option) -> str:
    return f"--{option.name} takes {option.describe_type()}: {option.help}"


def _short_reason(message: str) -> str:
    """`expected a whole number, got 'abc'` -> `expected a whole number` (the value is shown already)."""
    head, sep, _ = message.rpartition(", got ")
    return head if sep else message


def coerce_flag(option: Option, values: List[Tuple[str, str]]) -> Any:
    """Validate one option's flag values with the option table's coerce()."""
    from alter.config.options import coerce

    if not option.multiple and len(values) > 1:
        shown = " and ".join(f"{w}={v!r}" if "=" not in w else w for w, v in values)
        raise UsageError(f"--{option.name} given {len(values)} times ({shown})", hint="give it once")
    for word, value in values:
        try:
            coerce(option, value)
        except ValueError as exc:
            flag = word.partition("=")[0]
            raise UsageError(
                f"{flag} {value or repr(value)}: {_short_reason(str(exc))}", hint=_option_hint(option)
            ) from None
    raw: Any = [v for _, v in values] if option.multiple else values[0][1]
    try:
        return coerce(option, raw)
    except ValueError as exc:
        raise UsageError(f"--{option.name}: {_short_reason(str(exc))}", hint=_option_hint(option)) from None


def unknown_flag(
    command: Command,
    word: str,
    key: str,
    parsed: Parsed,
    words: List[str],
    index: int,
    flags: Dict[str, Flag],
    options: Dict[str, Option],
) -> UsageError:
    import difflib
    import shlex

    option = options.get(key)
    if option is not None and not option.cli:
        return UsageError(
            f"option {option.name} cannot be set with a flag",
            hint=f"set it in a config file (`{option.name} ...;`) and `apm load` it",
        )
    candidates = list(flags) + [name for name, o in options.items() if o.cli]
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    suggestion = (
        ("did you mean " + " or ".join("--" + c.replace("_", "-") if c in flags else "--" + c for c in close) + "?")
        if close
        else ""
    )
    if command.rest and not parsed.dashdash:
        before = " ".join(shlex.quote(w) for w in words[:index])
        after = " ".join(shlex.quote(w) for w in words[index:])
        example = f"apm {command.name} {before + ' ' if before else ''}-- {after}"
        hint = f"{suggestion} " if suggestion else ""
        return UsageError(
            f"unknown option {word}; if it is for the program, put it after `--`: {example}",
            hint=hint + f"`apm help {command.name}` lists apm's own flags",
        )
    return UsageError(
        f"unknown option {word} for `apm {command.name}`",
        hint=suggestion or f"`apm help {command.name}` lists its flags",
    )
