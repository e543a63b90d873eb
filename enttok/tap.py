"""The twistd entry point: command-line options and C{makeService}."""

from __future__ import annotations

import os
import sys

from twisted.application.service import IService
from twisted.python import usage

from enttok.config import ConfigError, prepare_directories, resolve_config


class Options(usage.Options):
    """Options of C{twistd enttok}; each also has an environment variable."""

    synopsis = "[options]"
    longdesc = ("Runs the enttok backend on 127.0.0.1. Environment: BACKEND_PORT, "
                "BACKEND_TOKEN, APP_DATA_DIR, LOG_DIR, ENTTOK_VAULT, "
                "BACKEND_PARENT_PID; command-line options win.")
    optParameters = [
        ["port", "p", None, "Port on 127.0.0.1 (default 49671; 0 picks a free port)."],
        ["token", None, None, "API token (default: generated and stored in the data dir)."],
        ["data-dir", None, None, "Application data folder (default: the user-data dir)."],
        ["log-dir", None, None, "Log folder (default: <data>/backend/logs)."],
        ["vault", None, None, "Vault folder; sets the vault_path setting."],
        ["parent-pid", None, None, "Exit when this process stops being the parent."],
    ]
    optFlags = [
        ["exit-on-stdin-close", None, "Exit when standard input closes."],
    ]


def makeService(options: Options) -> IService:
    """
    Build the daemon's L{enttok.service.EnttokService}; a bad setting ends the
    process with one line on stderr.
    """
    from twisted.internet import reactor

    try:
        config = resolve_config(options, os.environ)
        prepare_directories(config)
        # Imported only now, so a bad option is reported at once.
        from enttok.lifecycle import exit_cleanly_on_sigterm
        from enttok.service import EnttokService

        service = EnttokService(reactor, config)
    except ConfigError as e:
        sys.stderr.write(f"enttok: {e}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None
    exit_cleanly_on_sigterm(reactor)
    return service
