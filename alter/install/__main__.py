"""`python3 -m alter.install install|uninstall` from a source checkout (installs dist/apm)."""

from __future__ import annotations

import sys

from alter.install import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
