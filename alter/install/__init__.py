"""`apm install` and `apm uninstall [--purge]` (see docs/install.md).

The CLI hands every argument after the command name here:

    alter.install.main(["install", *rest])  /  alter.install.main(["uninstall", *rest])

and exits with the returned code.  Nothing here imports the daemon, psutil or
argon2 (the CLI stays fast); `install --extract-only` is the hidden child mode
the installer itself runs from the freshly installed file.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, TextIO

from alter.errors import ApmError
from alter.install.extraction import extract_only
from alter.install.installer import Installer
from alter.install.system import Layout, System

__all__ = ["Installer", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apm", description="Install or remove apm on this machine (root only).")
    sub = parser.add_subparsers(dest="command", metavar="{install,uninstall}")
    sub.required = True
    ins = sub.add_parser(
        "install",
        prog="apm install",
        help="install or upgrade apm from this file",
        description="Install (or upgrade in place) apm from the file being run: /usr/sbin/apm, the apm group, "
        "/var/log/apm.log, /etc/apm (kept if present), the init service. Safe to re-run.",
    )
    ins.add_argument(
        "--python",
        metavar="PATH",
        help="Python >= 3.9 the service runs apm with (default: the one running this command)",
    )
    ins.add_argument(
        "--shiv-root",
        metavar="DIR",
        help="where the bundled libraries are extracted (default /var/lib/apm/shiv; must not be noexec)",
    )
    ins.add_argument("--no-start", action="store_true", help="install and enable the service, but do not (re)start it")
    ins.add_argument("--source", help=argparse.SUPPRESS)  # install this zipapp instead of the running one
    ins.add_argument("--extract-only", action="store_true", help=argparse.SUPPRESS)  # child mode, see installer
    uni = sub.add_parser(
        "uninstall",
        prog="apm uninstall",
        help="remove apm from this machine",
        description="Stop the daemon and remove /usr/sbin/apm, the service and the extracted libraries. "
        "Config, state, logs and the apm group stay unless --purge is given.",
    )
    uni.add_argument(
        "--purge",
        action="store_true",
        help="also remove /etc/apm, /var/lib/apm, /var/log/apm.log, /var/log/apm/ and the apm group",
    )
    return parser


def main(argv: List[str], out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Run `apm install ...` / `apm uninstall ...`; return the exit code (docs/install.md lists them)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "install" and args.extract_only:
        return extract_only(out)
    installer = Installer(Layout.from_env(os.environ), System(), os.environ, out, err)
    try:
        if args.command == "install":
            return installer.install(
                python=args.python, source=args.source, shiv_root=args.shiv_root, start=not args.no_start
            )
        return installer.uninstall(purge=args.purge)
    except ApmError as exc:
        print(f"apm {args.command}: error: {exc.message}", file=err, flush=True)
        if exc.hint:
            print(f"  what to do: {exc.hint}", file=err, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"apm {args.command}: interrupted; re-run it to finish (it is safe to run again)", file=err)
        return 130
