"""`apm` entry point.  Keep this import-light: the CLI must start fast."""

from __future__ import annotations

import sys

PROXY_WORKER = "__proxy-worker"  # hidden: how the daemon starts its proxy processes from the zipapp


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == PROXY_WORKER:
        from alter.proxy.worker import main as proxy_main  # needs no psutil: no ensure_native()

        return proxy_main(sys.argv[2:])
    from alter.cli.main import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
