"""Helpers every layer shares (time, day bounds, paths, lock names, auth names).

The lowest layer of the package: nothing here imports from the rest of C{enttok}
(see docs/architecture.md and tests/test_layers.py).
"""
