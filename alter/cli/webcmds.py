"""CLI commands for the web GUI and API: `apm gui`, `apm token` ... (entries of the command table)."""

from __future__ import annotations

from alter.cli.table import Command

COMMANDS: tuple[Command, ...] = ()
