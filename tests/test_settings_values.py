"""The typed views of settings sections (llm, github) read from validated settings."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from enttok.connectors.github.settings import GitHubSettings
from enttok.settings import schema
from enttok.suggest.llm import LLMSettings


class GitHubSettingsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        github = GitHubSettings.of(schema.defaults()["github"])
        self.assertEqual(github, GitHubSettings(token=None, api_base_url="https://api.github.com",
                                                username=None, repos=()))
        self.assertFalse(github.configured)

    def test_from_an_update(self) -> None:
        current = schema.merge(schema.defaults(), {"github": {
            "token": "ghp_토큰", "api_base_url": "https://ghe.example/api/v3",
            "username": "octo", "repos": ["octo/일지", "octo/beta"]}})
        github = GitHubSettings.of(current["github"])
        self.assertTrue(github.configured)
        self.assertEqual((github.token, github.api_base_url, github.username, github.repos),
                         ("ghp_토큰", "https://ghe.example/api/v3", "octo",
                          ("octo/일지", "octo/beta")))

    def test_empty_token_is_not_configured(self) -> None:
        self.assertFalse(GitHubSettings.of({"token": ""}).configured)


class LLMSettingsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        self.assertEqual(LLMSettings.of(schema.defaults()["llm"]), LLMSettings(None, None, None))

    def test_from_an_update(self) -> None:
        current = schema.merge(schema.defaults(), {"llm": {
            "base_url": "http://127.0.0.1:11434/v1", "model": "qwen", "api_key": "키"}})
        self.assertEqual(LLMSettings.of(current["llm"]),
                         LLMSettings("http://127.0.0.1:11434/v1", "qwen", "키"))
