"""Start-up configuration: precedence, validation, directories and the token file."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.config import (
    DEFAULT_PORT,
    Config,
    ConfigError,
    load_or_create_token,
    prepare_directories,
    resolve_config,
)
from enttok.tap import Options

TOKEN_A = "cli-token-0123456789abcdef"
TOKEN_B = "env-token-0123456789abcdef"


def parse(*argv: str) -> Options:
    """Parse C{argv} the way twistd does for C{twistd enttok ...}."""
    options = Options()
    options.parseOptions(list(argv))
    return options


def resolve(argv: tuple[str, ...] = (), env: dict[str, str] | None = None,
            home: str = "/home/user/.local/share/enttok-e") -> Config:
    return resolve_config(parse(*argv), env or {}, home_data_dir=home)


class PrecedenceTests(SynchronousTestCase):
    """Each setting comes from the command line, else the environment, else a default."""

    #: option, environment variable, CLI value, env value, Config attribute,
    #: expected value from the CLI, from the environment, and by default.
    CASES: list[tuple[str, str, str, str, str, Any, Any, Any]] = [
        ("port", "BACKEND_PORT", "1234", "2345", "port", 1234, 2345, DEFAULT_PORT),
        ("token", "BACKEND_TOKEN", TOKEN_A, TOKEN_B, "token", TOKEN_A, TOKEN_B, None),
        ("data-dir", "APP_DATA_DIR", "/cli/data", "/env/data", "data_dir",
         Path("/cli/data"), Path("/env/data"), Path("/home/user/.local/share/enttok-e")),
        ("log-dir", "LOG_DIR", "/cli/logs", "/env/logs", "log_dir",
         Path("/cli/logs"), Path("/env/logs"),
         Path("/home/user/.local/share/enttok-e/backend/logs")),
        ("vault", "ENTTOK_VAULT", "/cli/vault", "/env/vault", "vault",
         Path("/cli/vault"), Path("/env/vault"), None),
        ("parent-pid", "BACKEND_PARENT_PID", "4242", "4343", "parent_pid", 4242, 4343, None),
    ]

    def test_command_line_wins_over_environment(self) -> None:
        for option, var, cli, env, attr, from_cli, _, _ in self.CASES:
            config = resolve((f"--{option}", cli), {var: env})
            self.assertEqual(getattr(config, attr), from_cli, option)

    def test_environment_wins_over_default(self) -> None:
        for _, var, _, env, attr, _, from_env, _ in self.CASES:
            config = resolve((), {var: env})
            self.assertEqual(getattr(config, attr), from_env, var)

    def test_defaults(self) -> None:
        config = resolve()
        for option, _, _, _, attr, _, _, default in self.CASES:
            self.assertEqual(getattr(config, attr), default, option)
        self.assertFalse(config.exit_on_stdin_close)

    def test_empty_environment_value_is_absent(self) -> None:
        config = resolve((), {"BACKEND_PORT": "", "APP_DATA_DIR": ""})
        self.assertEqual(config.port, DEFAULT_PORT)
        self.assertEqual(config.data_dir, Path("/home/user/.local/share/enttok-e"))

    def test_default_port(self) -> None:
        self.assertEqual(DEFAULT_PORT, 49671)
        self.assertEqual(resolve().port, 49671)

    def test_port_zero_allowed(self) -> None:
        self.assertEqual(resolve(("--port", "0")).port, 0)
        self.assertEqual(resolve((), {"BACKEND_PORT": "0"}).port, 0)

    def test_short_port_option(self) -> None:
        self.assertEqual(resolve(("-p", "8080")).port, 8080)

    def test_relative_paths_made_absolute(self) -> None:
        config = resolve(("--data-dir", "rel/data", "--log-dir", "rel/logs"))
        self.assertEqual(config.data_dir, Path.cwd() / "rel" / "data")
        self.assertEqual(config.log_dir, Path.cwd() / "rel" / "logs")

    def test_derived_paths(self) -> None:
        config = resolve(("--data-dir", "/d"))
        self.assertEqual(config.backend_dir, Path("/d/backend"))
        self.assertEqual(config.db_path, Path("/d/backend/data/index.db"))
        self.assertEqual(config.settings_path, Path("/d/backend/data/settings.json"))
        self.assertEqual(config.token_path, Path("/d/backend/backend.token"))

    def test_exit_on_stdin_close_flag(self) -> None:
        self.assertTrue(resolve(("--exit-on-stdin-close",)).exit_on_stdin_close)


class ValidationTests(SynchronousTestCase):
    """Malformed values are a L{ConfigError} with a one-line message."""

    def assertConfigError(self, argv: tuple[str, ...] = (), env: dict[str, str] | None = None,
                          mentions: str = "") -> ConfigError:
        error = self.assertRaises(ConfigError, resolve, argv, env)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertIn(mentions, message)
        return error

    def test_port_not_a_number(self) -> None:
        self.assertConfigError(("--port", "abc"), mentions="'abc'")
        self.assertConfigError((), {"BACKEND_PORT": "abc"}, mentions="invalid port")

    def test_port_out_of_range(self) -> None:
        self.assertConfigError(("--port", "70000"), mentions="70000")
        self.assertConfigError(("--port", "65536"), mentions="65536")
        self.assertConfigError(("--port", "-1"), mentions="invalid port")

    def test_highest_port_allowed(self) -> None:
        self.assertEqual(resolve(("--port", "65535")).port, 65535)

    def test_run_env_is_ignored(self) -> None:
        """The desktop app sets RUN_ENV (dev or prod); no value changes anything."""
        for value in ("dev", "prod", "staging"):
            self.assertEqual(resolve((), {"RUN_ENV": value}), resolve())

    def test_short_token_rejected(self) -> None:
        self.assertConfigError(("--token", "short"), mentions="token")
        self.assertConfigError((), {"BACKEND_TOKEN": "x" * 15}, mentions="token")

    def test_token_with_space_rejected(self) -> None:
        self.assertConfigError(("--token", "0123456789 abcdefgh"), mentions="token")

    def test_token_of_sixteen_accepted(self) -> None:
        self.assertEqual(resolve(("--token", "x" * 16)).token, "x" * 16)

    def test_bad_parent_pid(self) -> None:
        self.assertConfigError(("--parent-pid", "abc"), mentions="parent pid")
        self.assertConfigError((), {"BACKEND_PARENT_PID": "1"}, mentions="parent pid")
        self.assertConfigError(("--parent-pid", "-5"), mentions="parent pid")

    def test_overridden_bad_environment_value_ignored(self) -> None:
        # A bad environment value that the command line overrides is not an error.
        self.assertEqual(resolve(("--port", "80"), {"BACKEND_PORT": "abc"}).port, 80)


class DirectoryTests(SynchronousTestCase):
    """L{prepare_directories} creates the data layout or says why it cannot."""

    def setUp(self) -> None:
        self.root = Path(self.mktemp()).absolute()
        self.root.mkdir()

    def test_creates_layout(self) -> None:
        """The data and log folders, nothing else."""
        config = resolve(("--data-dir", str(self.root / "data")))
        prepare_directories(config)
        self.assertEqual(sorted(p.relative_to(self.root / "data").as_posix()
                                for p in (self.root / "data").rglob("*")),
                         ["backend", "backend/data", "backend/logs"])

    def test_creates_separate_log_dir(self) -> None:
        config = resolve(("--data-dir", str(self.root / "data"),
                          "--log-dir", str(self.root / "elsewhere" / "logs")))
        prepare_directories(config)
        self.assertTrue((self.root / "elsewhere" / "logs").is_dir())
        self.assertFalse((self.root / "data" / "backend" / "logs").exists())

    def test_idempotent(self) -> None:
        config = resolve(("--data-dir", str(self.root)))
        prepare_directories(config)
        prepare_directories(config)
        self.assertTrue((self.root / "backend" / "data").is_dir())

    def test_file_where_backend_dir_should_be(self) -> None:
        # Tests may run as root, which may write anywhere: a file blocks the folder.
        (self.root / "backend").write_text("not a folder")
        config = resolve(("--data-dir", str(self.root)))
        error = self.assertRaises(ConfigError, prepare_directories, config)
        self.assertIn(str(self.root / "backend"), str(error))
        self.assertNotIn("\n", str(error))

    def test_file_where_data_dir_should_be(self) -> None:
        (self.root / "data").write_text("not a folder")
        config = resolve(("--data-dir", str(self.root / "data")))
        self.assertRaises(ConfigError, prepare_directories, config)

    def test_file_where_log_dir_should_be(self) -> None:
        (self.root / "logs").write_text("not a folder")
        config = resolve(("--data-dir", str(self.root / "data"),
                          "--log-dir", str(self.root / "logs")))
        error = self.assertRaises(ConfigError, prepare_directories, config)
        self.assertIn("log directory", str(error))

    def test_vault_must_be_a_folder(self) -> None:
        (self.root / "vault.md").write_text("a file")
        config = resolve(("--data-dir", str(self.root), "--vault", str(self.root / "vault.md")))
        error = self.assertRaises(ConfigError, prepare_directories, config)
        self.assertIn("vault", str(error))

    def test_existing_vault_accepted(self) -> None:
        (self.root / "vault").mkdir()
        config = resolve(("--data-dir", str(self.root), "--vault", str(self.root / "vault")))
        prepare_directories(config)
        self.assertEqual(config.vault, self.root / "vault")


class TokenFileTests(SynchronousTestCase):
    """L{load_or_create_token} keeps one private token per data folder."""

    def setUp(self) -> None:
        root = Path(self.mktemp())
        root.mkdir()
        self.path = root / "backend.token"

    def test_creates_private_file(self) -> None:
        token = load_or_create_token(self.path)
        self.assertGreaterEqual(len(token), 32)
        self.assertEqual(self.path.read_text(encoding="ascii").strip(), token)
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.assertEqual(list(self.path.parent.iterdir()), [self.path])

    def test_reuses_existing(self) -> None:
        first = load_or_create_token(self.path)
        self.assertEqual(load_or_create_token(self.path), first)

    def test_reads_token_written_by_someone_else(self) -> None:
        self.path.write_text("given-token-0123456789\n", encoding="ascii")
        self.assertEqual(load_or_create_token(self.path), "given-token-0123456789")

    def test_tokens_differ_per_file(self) -> None:
        other = self.path.with_name("other.token")
        self.assertNotEqual(load_or_create_token(self.path), load_or_create_token(other))

    def test_replaces_too_short_token(self) -> None:
        self.path.write_text("short\n", encoding="ascii")
        token = load_or_create_token(self.path)
        self.assertNotEqual(token, "short")
        self.assertGreaterEqual(len(token), 16)
        self.assertEqual(self.path.read_text(encoding="ascii").strip(), token)

    def test_unwritable_location(self) -> None:
        self.path.parent.joinpath("blocker").write_text("a file, not a folder")
        path = self.path.parent / "blocker" / "backend.token"
        self.assertRaises(ConfigError, load_or_create_token, path)
