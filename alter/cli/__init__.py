"""The `apm` command line: `alter.cli.main.main(argv)`.

Import-light on purpose (the CLI must start fast): nothing here may import
the daemon, supervise, linux, logs, web, proxy, psutil or argon2.
"""
