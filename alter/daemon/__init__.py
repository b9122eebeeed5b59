"""The apm daemon: event loop, control socket, state, bootstrap."""
