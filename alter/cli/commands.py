"""THE table of `apm` commands.  Adding a command = adding one Command(...) entry.

Each entry says how the command is parsed (positional args, its own flags,
whether it takes worker option flags or program words), how it is shown in
help, and which handler runs it.  main.py, help.py and docs/cli.md follow it.
"""

from __future__ import annotations

from alter.cli import admin, confcmds, handlers, logcmds, webcmds
from alter.cli.flags import Arg, Flag
from alter.cli.table import Command

TYPE_CHECKING = False  # the CLI imports this module: keep `typing` off its startup path
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple


GROUPS = ("Process", "Inspection", "Config", "Daemon", "Help")


def _help(ctx: Any, parsed: Any) -> int:
    from alter.cli.help import cmd_help  # help.py reads this table: imported late to avoid a cycle

    return cmd_help(ctx, parsed)


NAME = Arg("name", "worker name")
NEW = Arg("new", "new worker name")
NO_WAIT = Flag("no-wait", "return at once instead of waiting startup_grace for a fast failure")

COMMAND_LIST: Tuple[Command, ...] = (
    Command(
        "run",
        "Create and start a worker without a config file",
        handlers.cmd_run,
        args=(Arg("exec", "program to run", required=False),),
        rest=True,
        options=True,
        flags=(NO_WAIT,),
        json=True,
        usage="apm run <exec> [args...] [flags] [-- program args...]",
        description=(
            "Every worker option is a flag (`apm help options`). apm's own flags are recognised anywhere "
            "before `--`; other words are the program's arguments; everything after `--` goes to the "
            "program verbatim. The worker runs in the current directory unless --path is given, and is "
            "named after the executable unless --name is given. apm waits startup_grace (2 s) for a fast "
            "failure and shows the child's stderr if it dies."
        ),
        examples=(
            "apm run node server.js --name myapp --instances 4 --server http://0.0.0.0:3000",
            "apm run python3 app.py --env PORT=8080 --env MODE=prod --restart-err",
            "apm run ./worker.sh --restart --watch '*.sh' -- --verbose",
        ),
    ),
    Command(
        "start",
        "Start a stopped worker",
        handlers.cmd_start,
        args=(NAME,),
        flags=(NO_WAIT,),
        json=True,
        examples=("apm start api",),
    ),
    Command(
        "stop",
        "Stop a worker and all its instances (SIGTERM, then SIGKILL after kill_timeout)",
        handlers.cmd_stop,
        args=(NAME,),
        json=True,
        examples=("apm stop api",),
    ),
    Command(
        "restart",
        "Restart a worker (one instance at a time when rolling)",
        handlers.cmd_restart,
        args=(NAME,),
        flags=(NO_WAIT,),
        json=True,
        examples=("apm restart api",),
    ),
    Command(
        "update",
        "Change a worker's options and restart it",
        handlers.cmd_update,
        args=(NAME,),
        options=True,
        json=True,
        flags=(
            Flag("no-restart", "apply the new config without restarting (takes effect at the next restart)"),
            NO_WAIT,
            Flag("unset", "reset an option to its default (repeatable)", value="OPTION", repeat=True),
        ),
        usage="apm update <name> [flags] [--no-restart] [-- new program args...]",
        description="Accepts the same option flags as `apm run`; words after `--` replace the program's arguments.",
        examples=(
            "apm update myapp --instances 8 --no-restart",
            "apm update api --unset watch",
            "apm update api -- --port 4000",
        ),
    ),
    Command(
        "list",
        "List workers: status, instances, pids, CPU, memory, uptime, restarts",
        handlers.cmd_list,
        aliases=("ls",),
        group="Inspection",
        json=True,
        write=False,
        examples=("apm list", "apm ls --json"),
    ),
    Command(
        "remove",
        "Stop and remove a worker",
        handlers.cmd_remove,
        aliases=("rm",),
        args=(NAME,),
        json=True,
        examples=("apm rm api",),
    ),
    Command("stopall", "Stop every worker (the daemon keeps running)", handlers.cmd_stopall, json=True),
    Command(
        "rename",
        "Rename a worker",
        handlers.cmd_rename,
        args=(NAME, NEW),
        json=True,
        common=False,
        examples=("apm rename api api-v1",),
    ),
    Command(
        "copy",
        "Duplicate a worker under a new name (stopped)",
        handlers.cmd_copy,
        aliases=("cp",),
        args=(NAME, NEW),
        json=True,
        common=False,
        examples=("apm copy api api-canary",),
    ),
    Command(
        "info",
        "Show a worker's options and live state per instance",
        handlers.cmd_info,
        group="Inspection",
        args=(NAME,),
        json=True,
        examples=("apm info api", "apm info api --json"),
    ),
    Command(
        "env",
        "Print the environment a worker's children run with",
        handlers.cmd_env,
        group="Inspection",
        args=(Arg("target", "worker name (or name#N for one instance)"),),
        json=True,
        usage="apm env <name>[#N]",
        examples=("apm env api", "apm env api#2"),
    ),
    Command(
        "wait",
        "Block until a worker is running (for scripts)",
        handlers.cmd_wait,
        group="Inspection",
        args=(NAME,),
        json=True,
        write=False,
        flags=(Flag("timeout", "give up after this long (default 30s; ms, or 30s / 5m)", value="MS"),),
        examples=("apm wait db --timeout 60s && ./migrate.sh",),
    ),
    Command(
        "signal",
        "Send a signal to a worker's instances",
        handlers.cmd_signal,
        args=(Arg("signal", "signal (SIGHUP, HUP, 10)"), Arg("target", "worker name or name#N")),
        json=True,
        common=False,
        usage="apm signal <SIGNAL> <name>[#N]   (or: apm SIGHUP <name>[#N])",
        description="`apm SIGHUP api` and `apm HUP api` are shortcuts. Instances are numbered from 1.",
        examples=("apm SIGHUP api", "apm SIGUSR1 api#2", "apm signal TERM api"),
    ),
    Command(
        "exit",
        "Stop all workers and shut the daemon down",
        admin.cmd_exit,
        group="Daemon",
        args=(Arg("daemon", "the word daemon"),),
        json=True,
        usage="apm exit daemon",
    ),
    Command(
        "daemon",
        "Run the daemon (foreground; --detach to background it)",
        admin.cmd_daemon,
        group="Daemon",
        raw=True,
        usage="apm daemon [--detach]",
        common=False,
    ),
    Command(
        "install",
        "Install apm system-wide (/usr/sbin/apm, group, log, service). Needs root",
        admin.cmd_install,
        group="Daemon",
        raw=True,
        usage="apm install [flags]",
        common=False,
    ),
    Command(
        "uninstall",
        "Remove apm from the system (--purge: logs, config, group too)",
        admin.cmd_uninstall,
        group="Daemon",
        raw=True,
        usage="apm uninstall [--purge]",
        common=False,
    ),
    Command(
        "version",
        "Print the CLI and daemon versions (also -v / --version)",
        admin.cmd_version,
        group="Daemon",
        json=True,
        write=False,
        common=False,
    ),
    Command(
        "help",
        "Show help for a command or topic (options, signals)",
        _help,
        group="Help",
        args=(Arg("topic", "command or topic", required=False),),
        write=False,
        common=False,
        usage="apm help [command | options | signals]",
    ),
)

# Feature areas keep their commands in their own modules (each a COMMANDS tuple of Command entries).
COMMAND_LIST = COMMAND_LIST + logcmds.COMMANDS + confcmds.COMMANDS + webcmds.COMMANDS

COMMANDS: Dict[str, Command] = {}
for _command in COMMAND_LIST:
    for _word in (_command.name, *_command.aliases):
        COMMANDS[_word] = _command

# PM2 / supervisorctl habits -> the apm command to suggest.
HABITS = {
    "delete": "remove",
    "del": "remove",
    "describe": "info",
    "show": "info",
    "status": "list",
    "ps": "list",
    "kill": "exit daemon",
    "shutdown": "exit daemon",
    "scale": "update <name> --instances N",
    "add": "run",
    "spawn": "run",
    "jlist": "list --json",
    "prettylist": "list --json",
    "env-show": "env",
}


def find(word: str) -> Optional[Command]:
    return COMMANDS.get(word)


def all_names() -> list:
    return [c.name for c in COMMAND_LIST]


def synopsis(command: Command) -> str:
    if command.usage:
        return command.usage
    parts = ["apm", command.name]
    for arg in command.args:
        parts.append(f"<{arg.name}>" if arg.required else f"[{arg.name}]")
    if command.rest:
        parts.append("[args...]")
    if command.flags or command.options:
        parts.append("[flags]")
    return " ".join(parts)
