"""The HTTP side of the daemon: REST routes, the guard in front of them, /events."""
