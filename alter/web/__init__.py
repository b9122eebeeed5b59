"""The web dashboard's server half: HTTP API under /api/v1, live stream, auth, static files.

    service = GuiService(daemon)      # service.py: what the daemon holds
    service.start()                   # binds gui_bind:gui_port in its own thread

Threads: the HTTP server runs in its own threads (one per connection).  Daemon
state is read and changed only on the daemon's event loop (`bridge.py`:
control commands through an in-process Request, or `loop.submit`).  Auth and
GUI settings belong to this package and are guarded by their own locks, so
slow argon2 hashing never runs on the loop.  See docs/api.md.
"""
