"""The typed schema of the user's settings.

Settings are plain JSON-shaped dicts; L{SCHEMA} is the single place that says
which keys exist, their types, defaults, and which are secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enttok import validation
from enttok.index import models
from enttok.validation import (
    Field,
    Schema,
    absolute_path,
    array,
    boolean,
    http_url,
    integer,
    optional,
    origin,
    text,
    timezone,
)
from enttok.vault.daily import DEFAULT_HEADING, DEFAULT_PATTERN, check_heading, check_pattern

SettingsError = validation.ValidationError

SCHEMA: Schema = {
    "vault_path": Field(optional(absolute_path), None, "Absolute path of the Markdown vault."),
    "github": {
        "token": Field(optional(text(max_length=512)), None, "Personal access token.", True),
        "api_base_url": Field(http_url, "https://api.github.com",
                              "API root; GitHub Enterprise uses https://HOST/api/v3."),
        "username": Field(optional(text(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})", 39)), None,
                          "Login whose activity is synced; discovered when null."),
        "repos": Field(array(text(r"[\w.-]+/[\w.-]+", 200, "expected owner/name")), [],
                       "Repositories to sync; empty means those in recent events."),
    },
    "connectors": {
        "git": {
            "enabled": Field(boolean, False, "Sync commits from local git repositories."),
            "repositories": Field(array(absolute_path, 200), [],
                                  "Absolute paths of repositories to sync."),
            "search_roots": Field(array(absolute_path, 50), [],
                                  "Folders searched for repositories (see search_depth)."),
            "search_depth": Field(integer(0, 8), 3,
                                  "How many folder levels below a search root to look."),
            "author_emails": Field(array(text(r"[^\s@]+@[^\s@]+", 320, "expected an e-mail"),
                                         20), [],
                                   "The user's commit e-mails; empty: git config user.email."),
            "interval_minutes": Field(integer(0, 7 * 24 * 60), 15,
                                      "Minutes between git syncs; 0 turns them off."),
        },
        "calendar": {
            "enabled": Field(boolean, False, "Sync events from .ics files."),
            "paths": Field(array(absolute_path, 200), [],
                           "Absolute paths of .ics files or folders holding them."),
            "interval_minutes": Field(integer(0, 7 * 24 * 60), 30,
                                      "Minutes between calendar syncs; 0 turns them off."),
            "days_back": Field(integer(0, 366), 7, "Days before today that are synced."),
            "days_ahead": Field(integer(0, 366), 14, "Days after today that are synced."),
        },
    },
    "schedule": {
        "vault_scan_minutes": Field(integer(0, 7 * 24 * 60), 30,
                                    "Minutes between vault scans; 0 turns them off."),
        "github_sync_minutes": Field(integer(0, 7 * 24 * 60), 15,
                                     "Minutes between GitHub syncs; 0 turns them off."),
        "compact_hours": Field(integer(0, 24 * 365), 24,
                               "Hours between database maintenance runs; 0 turns it off."),
    },
    "embedding_model": Field(optional(models.check_setting), None,
                             "Embedding model: a name (use-multilingual, minilm-onnx, minilm), "
                             "names joined by + (fused), or a local sentence-transformers "
                             "folder; null: the default (use-multilingual)."),
    "workers": Field(integer(1, 16), 2, "Jobs that may run at once."),
    "allowed_origins": Field(array(origin, 50), [],
                             "Browser origins allowed to call the API and open /events."),
    "timezone": Field(optional(timezone), None, "IANA time zone for days; null: the system's."),
    "llm": {
        "base_url": Field(optional(http_url), None,
                          "OpenAI-compatible API root (e.g. a local Ollama: "
                          "http://127.0.0.1:11434/v1); null turns summaries off."),
        "model": Field(optional(text(max_length=200)), None, "Model name for summaries."),
        "api_key": Field(optional(text(max_length=512)), None, "API key, if the server needs one.",
                         True),
    },
    "daily_notes": {
        "path_pattern": Field(check_pattern, DEFAULT_PATTERN,
                              "Vault-relative path of a day's note (YYYY, MM, DD are "
                              "replaced); accepted suggestions are appended there."),
        "template": Field(optional(text(max_length=4096)), None,
                          "Template of a new daily note: an absolute path or one relative "
                          "to the vault ({{date}}, {{date:FORMAT}}, {{title}} are filled in)."),
        "heading": Field(check_heading, DEFAULT_HEADING,
                         "Heading under which accepted suggestions are appended."),
    },
    "retention": {
        "jobs_days": Field(integer(1, 3650), 30, "Days finished jobs and their events are kept."),
    },
}


def defaults() -> dict[str, Any]:
    """Every setting at its default."""
    return validation.defaults(SCHEMA)


def merge(current: Mapping[str, Any], update: Any) -> dict[str, Any]:
    """Validate a partial update against L{SCHEMA} and apply it to C{current}."""
    return validation.merge(current, update, SCHEMA)


def load(stored: Any) -> dict[str, Any]:
    """Read stored settings leniently (see L{validation.load})."""
    return validation.load(stored, SCHEMA)


def public_view(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as clients see them: secrets become C{<name>_set}."""
    return validation.public_view(settings, SCHEMA)


def secrets_of(settings: Mapping[str, Any]) -> list[str]:
    """Every secret value that is set (for log redaction)."""
    return validation.secrets_of(settings, SCHEMA)
