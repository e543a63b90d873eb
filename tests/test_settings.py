"""Settings: the schema's validation and merging, persistence, and the /settings routes."""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.settings import SettingsError, SettingsStore
from enttok.settings.schema import (
    SCHEMA,
    Field,
    defaults,
    load,
    merge,
    public_view,
    secrets_of,
)
from enttok.threads import run_inline
from tests.apisupport import APITestCase

GITHUB_TOKEN = "ghp_0123456789abcdefSECRET"


class ValidationTests(SynchronousTestCase):
    """L{merge} rejects anything the schema does not describe, naming the field."""

    def assertInvalid(self, update: Any, field: str) -> SettingsError:
        error = self.assertRaises(SettingsError, merge, defaults(), update)
        self.assertEqual(error.field, field)
        self.assertIn(field, str(error))
        return error

    def assertValid(self, update: Any) -> dict[str, Any]:
        return merge(defaults(), update)

    def test_unknown_top_level_key(self) -> None:
        self.assertInvalid({"wrokers": 2}, "wrokers")

    def test_unknown_nested_key(self) -> None:
        error = self.assertInvalid({"github": {"tokn": "x"}}, "github.tokn")
        self.assertIn("unknown", error.message)

    def test_not_an_object(self) -> None:
        self.assertInvalid([1, 2], "settings")
        self.assertInvalid(None, "settings")
        self.assertInvalid({"github": "octocat"}, "github")
        self.assertInvalid({"schedule": [30]}, "schedule")

    def test_integer_types(self) -> None:
        self.assertInvalid({"workers": "2"}, "workers")
        self.assertInvalid({"workers": 2.0}, "workers")
        self.assertInvalid({"workers": None}, "workers")
        self.assertInvalid({"schedule": {"vault_scan_minutes": "30"}},
                           "schedule.vault_scan_minutes")

    def test_bool_is_not_an_integer(self) -> None:
        self.assertInvalid({"workers": True}, "workers")
        self.assertInvalid({"retention": {"jobs_days": False}}, "retention.jobs_days")

    def test_ranges(self) -> None:
        self.assertInvalid({"workers": 0}, "workers")
        self.assertInvalid({"workers": 17}, "workers")
        self.assertEqual(self.assertValid({"workers": 1})["workers"], 1)
        self.assertEqual(self.assertValid({"workers": 16})["workers"], 16)
        self.assertInvalid({"schedule": {"vault_scan_minutes": -1}}, "schedule.vault_scan_minutes")
        self.assertInvalid({"schedule": {"github_sync_minutes": 7 * 24 * 60 + 1}},
                           "schedule.github_sync_minutes")
        self.assertInvalid({"retention": {"jobs_days": 0}}, "retention.jobs_days")

    def test_zero_minutes_turns_off(self) -> None:
        new = self.assertValid({"schedule": {"vault_scan_minutes": 0}})
        self.assertEqual(new["schedule"]["vault_scan_minutes"], 0)

    def test_string_types(self) -> None:
        self.assertInvalid({"github": {"token": 123}}, "github.token")
        self.assertInvalid({"vault_path": ["/a"]}, "vault_path")

    def test_repos(self) -> None:
        new = self.assertValid({"github": {"repos": ["octo/hello-world", "a.b/c_d"]}})
        self.assertEqual(new["github"]["repos"], ["octo/hello-world", "a.b/c_d"])
        self.assertInvalid({"github": {"repos": ["octo/ok", "no-slash"]}}, "github.repos[1]")
        self.assertInvalid({"github": {"repos": ["a/b/c"]}}, "github.repos[0]")
        self.assertInvalid({"github": {"repos": ["owner/"]}}, "github.repos[0]")
        self.assertInvalid({"github": {"repos": "octo/hello"}}, "github.repos")

    def test_repos_deduplicated(self) -> None:
        new = self.assertValid({"github": {"repos": ["a/b", "c/d", "a/b"]}})
        self.assertEqual(new["github"]["repos"], ["a/b", "c/d"])

    def test_timezone(self) -> None:
        self.assertEqual(self.assertValid({"timezone": "Europe/Paris"})["timezone"],
                         "Europe/Paris")
        self.assertIsNone(self.assertValid({"timezone": None})["timezone"])
        self.assertInvalid({"timezone": "Mars/Olympus_Mons"}, "timezone")
        self.assertInvalid({"timezone": ""}, "timezone")
        self.assertInvalid({"timezone": "../../etc/passwd"}, "timezone")
        self.assertInvalid({"timezone": 1}, "timezone")
        # A folder of the tz database (an IsADirectoryError from zoneinfo when the
        # tzdata package is installed), not a zone.
        self.assertInvalid({"timezone": "America"}, "timezone")
        self.assertEqual(self.assertValid({"timezone": "Asia/Seoul"})["timezone"], "Asia/Seoul")

    def test_allowed_origins(self) -> None:
        origins = ["http://localhost:5173", "https://app.example.com", "app://enttok"]
        self.assertEqual(self.assertValid({"allowed_origins": origins})["allowed_origins"],
                         origins)
        self.assertInvalid({"allowed_origins": ["http://localhost:5173/path"]},
                           "allowed_origins[0]")
        self.assertInvalid({"allowed_origins": ["http://ok", "localhost:5173"]},
                           "allowed_origins[1]")
        self.assertInvalid({"allowed_origins": ["ftp://files.example"]}, "allowed_origins[0]")
        self.assertInvalid({"allowed_origins": "http://localhost:5173"}, "allowed_origins")
        self.assertInvalid({"allowed_origins": ["http://x"] * 51}, "allowed_origins")

    def test_vault_path_must_be_absolute(self) -> None:
        self.assertInvalid({"vault_path": "notes/vault"}, "vault_path")
        self.assertEqual(self.assertValid({"vault_path": "/srv/vault"})["vault_path"],
                         "/srv/vault")

    def test_api_base_url(self) -> None:
        new = self.assertValid({"github": {"api_base_url": "https://ghe.example.com/api/v3/"}})
        self.assertEqual(new["github"]["api_base_url"], "https://ghe.example.com/api/v3")
        self.assertInvalid({"github": {"api_base_url": "ghe.example.com"}}, "github.api_base_url")
        self.assertInvalid({"github": {"api_base_url": "file:///etc"}}, "github.api_base_url")

    def test_username(self) -> None:
        self.assertValid({"github": {"username": "octo-cat"}})
        self.assertInvalid({"github": {"username": "-octo"}}, "github.username")
        self.assertInvalid({"github": {"username": "o" * 40}}, "github.username")


class MergeTests(SynchronousTestCase):
    """Partial updates change only what they name."""

    def test_nested_update_keeps_siblings(self) -> None:
        new = merge(defaults(), {"github": {"username": "octocat"}})
        self.assertEqual(new["github"], {"token": None, "api_base_url": "https://api.github.com",
                                         "username": "octocat", "repos": []})
        self.assertEqual(new["schedule"], defaults()["schedule"])

    def test_successive_updates_accumulate(self) -> None:
        first = merge(defaults(), {"schedule": {"vault_scan_minutes": 5}})
        second = merge(first, {"schedule": {"github_sync_minutes": 60}, "workers": 4})
        self.assertEqual(second["schedule"], {"vault_scan_minutes": 5, "github_sync_minutes": 60,
                                              "compact_hours": 24})
        self.assertEqual(second["workers"], 4)

    def test_current_not_mutated(self) -> None:
        current = defaults()
        merge(current, {"github": {"repos": ["a/b"]}, "workers": 3})
        self.assertEqual(current, defaults())

    def test_empty_update_is_identity(self) -> None:
        self.assertEqual(merge(defaults(), {}), defaults())

    def test_failed_update_applies_nothing(self) -> None:
        current = defaults()
        self.assertRaises(SettingsError, merge, current, {"workers": 3, "bogus": 1})
        self.assertEqual(current["workers"], 2)

    def test_null_clears_optional(self) -> None:
        with_token = merge(defaults(), {"github": {"token": GITHUB_TOKEN}})
        cleared = merge(with_token, {"github": {"token": None}})
        self.assertIsNone(cleared["github"]["token"])


class PublicViewTests(SynchronousTestCase):
    """Secrets never leave the daemon; clients see whether they are set."""

    def test_token_hidden(self) -> None:
        settings = merge(defaults(), {"github": {"token": GITHUB_TOKEN, "username": "octo"}})
        view = public_view(settings)
        self.assertNotIn("token", view["github"])
        self.assertIs(view["github"]["token_set"], True)
        self.assertEqual(view["github"]["username"], "octo")
        self.assertNotIn(GITHUB_TOKEN, json.dumps(view))

    def test_token_unset(self) -> None:
        view = public_view(defaults())
        self.assertIs(view["github"]["token_set"], False)
        self.assertNotIn("token", view["github"])

    def secret_paths(self, schema: Mapping[str, Any] = SCHEMA,
                     prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        """The key path of every secret the schema declares."""
        paths = []
        for key, spec in schema.items():
            if isinstance(spec, Field):
                if spec.secret:
                    paths.append((*prefix, key))
            else:
                paths.extend(self.secret_paths(spec, (*prefix, key)))
        return paths

    def test_every_secret_hidden(self) -> None:
        paths = self.secret_paths()
        self.assertIn(("github", "token"), paths)
        settings = defaults()
        for n, path in enumerate(paths):
            section = settings
            for key in path[:-1]:
                section = section[key]
            section[path[-1]] = f"secret-value-{n}-0123456789"
        view = public_view(settings)
        self.assertNotIn("secret-value-", json.dumps(view))
        for path in paths:
            section = view
            for key in path[:-1]:
                section = section[key]
            self.assertNotIn(path[-1], section)
            self.assertIs(section[f"{path[-1]}_set"], True, path)
        self.assertEqual(len(secrets_of(settings)), len(paths))

    def test_everything_else_shown(self) -> None:
        view = public_view(defaults())
        expected = defaults()
        for path in self.secret_paths():
            section = expected
            for key in path[:-1]:
                section = section[key]
            del section[path[-1]]
            section[f"{path[-1]}_set"] = False
        self.assertEqual(view, expected)

    def test_secrets_of(self) -> None:
        self.assertEqual(secrets_of(defaults()), [])
        settings = merge(defaults(), {"github": {"token": GITHUB_TOKEN}})
        self.assertEqual(secrets_of(settings), [GITHUB_TOKEN])


class LenientLoadTests(SynchronousTestCase):
    """Stored settings from another version never stop the daemon."""

    def test_unknown_keys_dropped(self) -> None:
        loaded = load({"workers": 4, "future_setting": True, "github": {"later": 1}})
        self.assertEqual(loaded["workers"], 4)
        self.assertNotIn("future_setting", loaded)
        self.assertNotIn("later", loaded["github"])

    def test_invalid_values_fall_back_to_defaults(self) -> None:
        loaded = load({"workers": 99, "github": {"token": GITHUB_TOKEN, "repos": "a/b"},
                       "schedule": 5, "timezone": "Nowhere/Special"})
        expected = defaults()
        expected["github"]["token"] = GITHUB_TOKEN
        self.assertEqual(loaded, expected)

    def test_not_an_object(self) -> None:
        self.assertEqual(load([1, 2, 3]), defaults())
        self.assertEqual(load(None), defaults())


class StoreTests(SynchronousTestCase):
    """L{SettingsStore} keeps the settings in one JSON file."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.path = self.folder / "settings.json"

    def store(self) -> SettingsStore:
        store = SettingsStore(self.path, run_inline)
        store.load()
        return store

    def test_defaults_without_file(self) -> None:
        store = self.store()
        self.assertEqual(store.current, defaults())
        self.assertFalse(self.path.exists())

    def test_update_persists(self) -> None:
        store = self.store()
        new = self.successResultOf(store.update({"workers": 4, "github": {"repos": ["a/b"]}}))
        self.assertEqual(new["workers"], 4)
        self.assertEqual(store.get("workers"), 4)
        self.assertEqual(store.get("github.repos"), ["a/b"])
        on_disk = json.loads(self.path.read_text(encoding="utf-8"))
        self.assertEqual(on_disk["workers"], 4)
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.assertEqual([p.name for p in self.folder.iterdir()], ["settings.json"])

        reloaded = self.store()
        self.assertEqual(reloaded.current, store.current)
        self.assertEqual(reloaded.get("schedule.vault_scan_minutes"), 30)

    def test_invalid_update_raises_and_changes_nothing(self) -> None:
        store = self.store()
        error = self.assertRaises(SettingsError, store.update, {"github": {"tokn": "x"}})
        self.assertEqual(error.field, "github.tokn")
        self.assertEqual(store.current, defaults())
        self.assertFalse(self.path.exists())

    def test_listeners_told_old_and_new(self) -> None:
        store = self.store()
        calls: list[tuple[Any, Any]] = []

        def listener(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            calls.append((old["workers"], new["workers"]))
            self.assertTrue(self.path.exists())  # told once the change is on disk

        store.subscribe(listener)
        self.successResultOf(store.update({"workers": 5}))
        self.assertEqual(calls, [(2, 5)])

    def test_failing_listener_does_not_break_update(self) -> None:
        store = self.store()

        def broken(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
            raise RuntimeError("listener bug")

        store.subscribe(broken)
        self.successResultOf(store.update({"workers": 5}))
        self.assertEqual(store.get("workers"), 5)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_corrupt_file_moved_aside(self) -> None:
        self.path.write_bytes(b'{"workers": 4,')
        store = self.store()
        self.assertEqual(store.current, defaults())
        self.assertFalse(self.path.exists())
        aside = self.path.with_name("settings.json.corrupt")
        self.assertEqual(aside.read_bytes(), b'{"workers": 4,')
        # The next update writes a fresh file.
        self.successResultOf(store.update({"workers": 3}))
        self.assertEqual(self.store().get("workers"), 3)

    def test_non_utf8_file_moved_aside(self) -> None:
        self.path.write_bytes(b"\xff\xfe\x00garbage")
        self.assertEqual(self.store().current, defaults())
        self.assertTrue(self.path.with_name("settings.json.corrupt").exists())

    def test_lenient_load_of_unknown_keys(self) -> None:
        self.path.write_text(json.dumps({"workers": 6, "from_the_future": {"x": 1},
                                         "schedule": {"compact_hours": 12, "new_job": 3}}))
        store = self.store()
        self.assertEqual(store.get("workers"), 6)
        self.assertEqual(store.get("schedule.compact_hours"), 12)
        self.assertNotIn("from_the_future", store.current)
        self.assertTrue(self.path.exists())  # readable, so not set aside


class SettingsRouteTests(APITestCase):
    """GET and POST /settings."""

    def test_get_public_view(self) -> None:
        body = self.request("GET", "/settings").json()
        self.assertEqual(body, public_view(defaults()))

    def test_post_returns_merged_public_view(self) -> None:
        response = self.post_json("/settings", {"github": {"token": GITHUB_TOKEN},
                                                "schedule": {"vault_scan_minutes": 5}})
        self.assertEqual(response.code, 200, response.body)
        body = response.json()
        self.assertNotIn(GITHUB_TOKEN.encode(), response.body)
        self.assertIs(body["github"]["token_set"], True)
        self.assertNotIn("token", body["github"])
        self.assertEqual(body["github"]["api_base_url"], "https://api.github.com")
        self.assertEqual(body["schedule"], {"vault_scan_minutes": 5, "github_sync_minutes": 15,
                                            "compact_hours": 24})
        self.assertEqual(self.request("GET", "/settings").json(), body)
        self.assertEqual(self.settings.get("github.token"), GITHUB_TOKEN)

    def test_post_persists(self) -> None:
        self.post_json("/settings", {"workers": 7})
        reloaded = SettingsStore(self.settings_path, run_inline)
        reloaded.load()
        self.assertEqual(reloaded.get("workers"), 7)

    def assertInvalidSetting(self, update: Any, field: str) -> None:
        before = self.request("GET", "/settings").json()
        error = self.assertError(self.post_json("/settings", update), 400, "invalid_setting")
        self.assertEqual(error["details"], {"field": field})
        self.assertEqual(self.request("GET", "/settings").json(), before)

    def test_unknown_field(self) -> None:
        self.assertInvalidSetting({"github": {"tokn": "x"}}, "github.tokn")

    def test_wrong_type(self) -> None:
        self.assertInvalidSetting({"workers": True}, "workers")
        self.assertInvalidSetting({"schedule": {"compact_hours": "24"}}, "schedule.compact_hours")

    def test_bad_repo(self) -> None:
        self.assertInvalidSetting({"github": {"repos": ["nope"]}}, "github.repos[0]")

    def test_not_an_object(self) -> None:
        self.assertInvalidSetting([{"workers": 3}], "settings")
