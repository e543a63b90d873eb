"""docs/openapi.yaml describes exactly the routes the daemon serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from twisted.trial.unittest import SynchronousTestCase

from enttok.api.app import BackendAPI

SPEC = Path(__file__).parent.parent / "docs" / "openapi.yaml"
#: Served by the guard in front of the Klein app, not by a Klein route.
GUARD_ROUTES = {("/events", "get")}


def served_routes() -> set[tuple[str, str]]:
    """(path, method) of every Klein route, in OpenAPI's path syntax."""
    routes = set()
    for rule in BackendAPI.app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((path, method.lower()))
    return routes | GUARD_ROUTES


def documented_routes() -> set[tuple[str, str]]:
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return {(path, method) for path, item in spec["paths"].items() for method in item
            if method in ("get", "post", "put", "patch", "delete")}


class OpenAPITests(SynchronousTestCase):
    def test_every_route_is_documented(self) -> None:
        self.assertEqual(sorted(served_routes() - documented_routes()), [])

    def test_nothing_documented_is_missing(self) -> None:
        self.assertEqual(sorted(documented_routes() - served_routes()), [])

    def test_every_operation_documents_auth_errors(self) -> None:
        spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                self.assertIn("401", operation["responses"], f"{method} {path}")
                self.assertIn("403", operation["responses"], f"{method} {path}")

    def test_job_types_match_the_registry(self) -> None:
        spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
        documented = spec["paths"]["/jobs"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]["properties"]["type"]["enum"]
        self.assertEqual(sorted(documented), registered_names(Path(self.mktemp())))


def registered_names(folder: Path) -> list[str]:
    """Job types of a real registry (built on a throwaway database)."""
    from twisted.internet.task import Clock

    from enttok.index.indexer import VaultIndex
    from enttok.index.vectors import VectorIndex
    from enttok.service import registry_for
    from enttok.settings import SettingsStore
    from enttok.store import Database
    from enttok.threads import run_inline
    from tests.embedders import HashingEmbedder

    folder.mkdir(parents=True)
    db = Database(folder / "index.db", run_inline)
    db.open()
    settings = SettingsStore(folder / "settings.json", run_inline)
    index = VaultIndex(Clock(), db, HashingEmbedder(), VectorIndex(folder / "index.hnsw"),
                       run_inline, run_inline)
    registry = registry_for(Clock(), db, settings, index, lambda job_type, payload: None)  # type: ignore[arg-type, return-value]
    db.connection.close()
    return registry.names()
