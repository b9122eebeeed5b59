"""What `apm install` writes from its own bundle: the default apm.conf and the Cloudflare lists."""

from __future__ import annotations

import pkgutil

from alter.install.errors import InstallError

DEFAULT_CONFIG = """\
# /etc/apm/apm.conf: configuration of the root apm daemon (apm.conf syntax, see the apm manual).
# Written once by `apm install` and never overwritten: this file is yours.
# The daemon loads it at startup; `apm reload` applies changes.

daemon {
    # Web GUI and HTTP API on one port (0 disables it). Keep it on loopback:
    # a non-loopback gui_bind needs a password first (`apm gui` sets one up).
    gui_port  6789;
    gui_bind  127.0.0.1;
}

# One file per app in /etc/apm/apm.conf.d/ (*.conf, loaded in name order).
include apm.conf.d/*.conf;

# Example worker, reachable only through Cloudflare:
# worker {
#     name    web;
#     exec    node;
#     params  server.js;
#     server  http://0.0.0.0:8080;
#     vanguard {
#         include /etc/apm/ips/cloudflare-v4.part;
#         include /etc/apm/ips/cloudflare-v6.part;
#     }
# }
"""


def bundled_ip_file(name: str) -> bytes:
    """A Cloudflare range snapshot bundled in the package (works offline, from the zip too)."""
    data = pkgutil.get_data("alter.data", name)
    if not data:
        raise InstallError(
            f"the bundled file alter/data/{name} is missing from this apm build",
            hint="rebuild apm with `python3 build.py` (it bundles alter/data/) and re-run the installer",
        )
    return data
