"""apm: a process manager appliance for Linux servers (Python package `alter`)."""

__version__ = "0.1.0"
