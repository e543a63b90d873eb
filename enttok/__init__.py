"""enttok: the local backend of the enttok-e work-journal desktop app."""

__version__ = "0.1.0"
