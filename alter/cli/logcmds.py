"""CLI commands for logs: `apm log`, `apm grep`, `apm flush` ... (entries of the command table)."""

from __future__ import annotations

from alter.cli.table import Command

COMMANDS: tuple[Command, ...] = ()
