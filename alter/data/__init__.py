"""Data files shipped inside the zipapp (read with `pkgutil.get_data("alter.data", name)`).

cloudflare-v4.part / cloudflare-v6.part: a snapshot of Cloudflare's published
egress ranges as apm.conf `allow_ip` lines; `apm install` copies them to
/etc/apm/ips/ (offline: nothing is fetched).
"""
