"""The log pipeline: capture, line formatting, sinks (files, syslog, ring buffer, subscribers).

`alter.logs.pipeline.WorkerLog` is the entry point the supervision engine uses;
see docs/logs.md for the line layout, rotation rules and what happens on a full disk.
"""
