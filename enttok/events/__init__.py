"""Live events: the in-process bus and the /events WebSocket."""
