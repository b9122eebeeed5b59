"""CLI commands for the config lifecycle: `apm boot`, `load`, `unload`, `reload`, `saveconf` ... (entries of the command table)."""

from __future__ import annotations

from alter.cli.table import Command

COMMANDS: tuple[Command, ...] = ()
