"""Start-up configuration: command line over environment over defaults.

Everything here is resolved once, before the reactor runs. Problems are
reported as L{ConfigError}, which the tap turns into a one-line message and a
non-zero exit status.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from attrs import frozen
from platformdirs import user_data_dir

APP_NAME = "enttok-e"
DEFAULT_PORT = 49671

#: (option name, environment variable) pairs; the command line wins. (The desktop
#: app also sets C{RUN_ENV}; nothing depends on it, so it is not read.)
ENV_NAMES: Mapping[str, str] = {
    "port": "BACKEND_PORT",
    "token": "BACKEND_TOKEN",
    "data-dir": "APP_DATA_DIR",
    "log-dir": "LOG_DIR",
    "vault": "ENTTOK_VAULT",
    "parent-pid": "BACKEND_PARENT_PID",
}


class ConfigError(Exception):
    """A start-up setting is invalid; the message is one line for the user."""


@frozen
class Config:
    """The resolved start-up configuration of one daemon process."""

    port: int
    token: str | None
    data_dir: Path
    log_dir: Path
    vault: Path | None
    exit_on_stdin_close: bool
    parent_pid: int | None

    @property
    def backend_dir(self) -> Path:
        return self.data_dir / "backend"

    @property
    def db_path(self) -> Path:
        return self.backend_dir / "data" / "index.db"

    @property
    def settings_path(self) -> Path:
        return self.backend_dir / "data" / "settings.json"

    @property
    def token_path(self) -> Path:
        return self.backend_dir / "backend.token"


def _pick(name: str, cli: Mapping[str, object], env: Mapping[str, str]) -> str | None:
    value = cli.get(name)
    if value is not None:
        return str(value)
    return env.get(ENV_NAMES[name]) or None


def _parse_port(text: str | None) -> int:
    if text is None:
        return DEFAULT_PORT
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"invalid port {text!r}: expected a number from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"invalid port {port}: expected a number from 0 to 65535")
    return port


def _parse_pid(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) <= 1:
        raise ConfigError(f"invalid parent pid {text!r}: expected a process id above 1")
    return int(text)


def resolve_config(
    cli: Mapping[str, object], env: Mapping[str, str], home_data_dir: str | None = None
) -> Config:
    """
    Resolve the configuration without touching the file system.

    @param cli: option values given on the command line (C{None} when absent).
    @param env: the process environment.
    @param home_data_dir: the platform's user-data folder (computed when C{None}).
    @raise ConfigError: when a value is malformed.
    """
    data_text = _pick("data-dir", cli, env)
    data_dir = Path(data_text or home_data_dir or user_data_dir(APP_NAME, appauthor=False))
    data_dir = data_dir.expanduser().absolute()
    log_text = _pick("log-dir", cli, env)
    log_dir = Path(log_text).expanduser().absolute() if log_text else data_dir / "backend" / "logs"
    vault_text = _pick("vault", cli, env)
    token = _pick("token", cli, env)
    if token is not None and (len(token) < 16 or not token.isprintable() or " " in token):
        raise ConfigError("invalid token: use at least 16 printable characters without spaces")
    return Config(
        port=_parse_port(_pick("port", cli, env)),
        token=token,
        data_dir=data_dir,
        log_dir=log_dir,
        vault=Path(vault_text).expanduser().absolute() if vault_text else None,
        exit_on_stdin_close=bool(cli.get("exit-on-stdin-close")),
        parent_pid=_parse_pid(_pick("parent-pid", cli, env)),
    )


def _ensure_writable_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {what} {str(path)!r}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {str(path)!r} is not writable")


def prepare_directories(config: Config) -> None:
    """
    Create the data layout (C{backend/data}, C{backend/logs}).

    @raise ConfigError: when a folder cannot be created or written.
    """
    _ensure_writable_dir(config.backend_dir, "data directory")
    _ensure_writable_dir(config.db_path.parent, "data directory")
    _ensure_writable_dir(config.log_dir, "log directory")
    if config.vault is not None and not config.vault.is_dir():
        raise ConfigError(f"vault {str(config.vault)!r} is not a folder")


def load_or_create_token(path: Path) -> str:
    """
    Return the token stored at C{path}, creating it (mode 0600) when absent.

    @raise ConfigError: when the file cannot be read or written.
    """
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read token file {str(path)!r}: {e}") from None
    if len(existing) >= 16:
        return existing
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IRUSR | stat.S_IWUSR)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # e.g. created, then the disk was full
        raise ConfigError(f"cannot write token file {str(path)!r}: {e.strerror}") from None
    return token
