"""Vault-relative paths (NFC, as the walker gives them) and the names on disk."""

from __future__ import annotations

import os
import unicodedata


def on_disk(root: str, rel: str) -> str:
    """
    The absolute path of vault-relative C{rel} (NFC) as named on disk.

    File systems that keep names as bytes (Linux) may hold another normalisation
    form (NFD, from macOS): each part that exists under another form is used as
    found; the parts that do not exist (yet) keep their NFC names.
    """
    full = os.path.join(root, *rel.split("/"))
    if os.path.lexists(full):
        return full
    current = root
    for part in rel.split("/"):
        candidate = os.path.join(current, part)
        if not os.path.lexists(candidate):
            try:
                names = os.listdir(current)
            except OSError:
                names = []
            match = next((n for n in names if unicodedata.normalize("NFC", n) == part), None)
            if match is not None:
                candidate = os.path.join(current, match)
        current = candidate
    return current
