"""Connector cursors summed up for GET /connectors, whatever their shape."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from enttok.connectors import cursors

KEYS = {"git": {"repositories", "branches", "newest_sync_at"},
        "calendar": {"window", "files", "events"},
        "github": {"since", "repositories", "newest", "title_misses"}}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["repos", "branches", "synced_at", "window", "files", "events",
                         "since", "title_misses", "tip", "issues", "저장소"]) | st.text(),
        inner, max_size=4),
    max_leaves=20)


class SummaryTests(SynchronousTestCase):
    def test_no_cursor_no_summary(self) -> None:
        for connector_id in (*KEYS, "extra"):
            self.assertIsNone(cursors.summarize(connector_id, None))

    def test_another_plugin_gets_the_length(self) -> None:
        self.assertEqual(cursors.summarize("extra", "커서 텍스트"), {"chars": 6})
        self.assertEqual(cursors.summarize("extra", ""), {"chars": 0})

    def test_calendar(self) -> None:
        text = json.dumps({"window": ["2024-04-24T00:00:00Z", "2024-05-16T00:00:00Z"],
                           "files": 2, "events": 31, "fingerprint": "ab" * 32})
        self.assertEqual(cursors.summarize("calendar", text), {
            "window": {"start": "2024-04-24T00:00:00Z", "end": "2024-05-16T00:00:00Z"},
            "files": 2, "events": 31})

    def test_git_branches_are_counted_across_repositories(self) -> None:
        text = json.dumps({"repos": {
            "/코드/일기": {"branches": {"main": {"tip": "a", "synced_at": "2024-05-01T09:00:00Z"},
                                      "기능": {"tip": "b", "synced_at": "2024-05-02T09:00:00Z"}}},
            "/srv/x": {"branches": {"main": {"tip": "c"}}}}})
        self.assertEqual(cursors.summarize("git", text), {
            "repositories": 2, "branches": 3, "newest_sync_at": "2024-05-02T09:00:00Z"})

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(sorted(KEYS)), json_values)
    def test_any_json_gives_the_same_fields(self, connector_id: str, value: Any) -> None:
        summary = cursors.summarize(connector_id, json.dumps(value))
        assert summary is not None
        self.assertEqual(set(summary), KEYS[connector_id])
        json.dumps(summary)

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from(sorted(KEYS)), st.text())
    def test_any_text_gives_the_same_fields(self, connector_id: str, text: str) -> None:
        summary = cursors.summarize(connector_id, text)
        assert summary is not None
        self.assertEqual(set(summary), KEYS[connector_id])
