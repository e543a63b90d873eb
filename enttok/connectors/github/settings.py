"""The C{github} settings as a value object (what the connector reads of them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

#: The API root when the setting is missing (as in the settings schema).
DEFAULT_API = "https://api.github.com"


@frozen
class GitHubSettings:
    """
    @ivar token: the personal access token (C{None}: the connector is off).
    @ivar api_base_url: the API root (GitHub Enterprise: C{https://HOST/api/v3}).
    @ivar username: the login whose activity is synced (C{None}: discovered).
    @ivar repos: C{owner/name} of the repositories synced (empty: those in recent events).
    """

    token: str | None = None
    api_base_url: str = DEFAULT_API
    username: str | None = None
    repos: tuple[str, ...] = field(default=(), converter=tuple)

    @classmethod
    def of(cls, section: Mapping[str, Any]) -> GitHubSettings:
        """The value of a validated C{github} settings section."""
        return cls(token=section.get("token") or None,
                   api_base_url=section.get("api_base_url") or DEFAULT_API,
                   username=section.get("username") or None,
                   repos=section.get("repos") or ())

    @property
    def configured(self) -> bool:
        """Whether a token is set (without one there is nothing to sync)."""
        return bool(self.token)
