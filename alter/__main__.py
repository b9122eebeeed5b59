"""`apm` entry point.  Keep this import-light: the CLI must start fast."""

from __future__ import annotations

import sys


def main() -> int:
    from alter.cli.main import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
