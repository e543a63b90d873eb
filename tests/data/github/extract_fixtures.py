"""Extract the GitHub fixtures in this folder from GitHub's OpenAPI description (run by hand).

    cd /tmp && npm pack @octokit/openapi && tar xzf octokit-openapi-*.tgz
    uv run --frozen python tests/data/github/extract_fixtures.py \\
        /tmp/package/generated/api.github.com.json

Each fixture is a documented example response, trimmed to the fields a client
might read (real names and shapes kept); tests/fakegithub/ builds its
responses from them. The events example holds only WatchEvent and PushEvent,
so the other event payloads are assembled from their schemas' properties,
filled with the values of the matching examples (issue, comment, review, pull).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
USER_KEYS = ("login", "id", "node_id", "avatar_url", "gravatar_id", "url", "html_url",
             "type", "site_admin")


def user(value: dict[str, Any]) -> dict[str, Any]:
    return {k: value[k] for k in USER_KEYS if k in value}


def pick(value: dict[str, Any], keys: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {k: value[k] for k in keys if k in value}


def example(spec: dict[str, Any], path: str, name: str = "default") -> Any:
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    ref = content["examples"][name]["$ref"]
    return spec["components"]["examples"][ref.rsplit("/", 1)[1]]["value"]


def component_example(spec: dict[str, Any], name: str) -> Any:
    return spec["components"]["examples"][name]["value"]


def properties(spec: dict[str, Any], schema: str) -> list[str]:
    return list(spec["components"]["schemas"][schema]["properties"])


def issue(value: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in value.items()
           if k not in ("milestone", "assignees", "closed_by", "pinned_comment")}
    out["user"] = user(value["user"])
    out["assignee"] = user(value["assignee"]) if value.get("assignee") else None
    out["labels"] = value["labels"][:1]
    return out


def commit(value: dict[str, Any]) -> dict[str, Any]:
    out = dict(value)
    out["commit"] = pick(value["commit"], ("url", "author", "committer", "message", "tree",
                                           "comment_count"))
    out["author"], out["committer"] = user(value["author"]), user(value["committer"])
    return out


def branch(value: dict[str, Any]) -> dict[str, Any]:
    repo = pick(value["repo"], ("id", "node_id", "name", "full_name", "private", "html_url",
                                "url"))
    return {**pick(value, ("label", "ref", "sha")), "user": user(value["user"]), "repo": repo}


def pull(value: dict[str, Any]) -> dict[str, Any]:
    drop = {"milestone", "assignee", "assignees", "requested_reviewers", "requested_teams",
            "_links", "auto_merge", "merged_by", "labels"}
    out = {k: v for k, v in value.items() if k not in drop}
    out["user"] = user(value["user"])
    out["head"], out["base"] = branch(value["head"]), branch(value["base"])
    return out


def minimal_pull(spec: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """C{pull-request-minimal}: what events carry instead of the whole pull request."""
    out = pick(full, properties(spec, "pull-request-minimal"))
    for side in ("head", "base"):
        out[side] = {"ref": full[side]["ref"], "sha": full[side]["sha"],
                     "repo": pick(full[side]["repo"], ("id", "url", "name"))}
    return out


def event_payloads(spec: dict[str, Any], the_issue: dict[str, Any],
                   the_pull: dict[str, Any]) -> dict[str, Any]:
    comment = dict(component_example(spec, "issue-comment"))
    comment = {k: v for k, v in comment.items() if k not in ("pin", "minimized")}
    comment["user"] = user(comment["user"])
    review_keys = properties(spec, "pull-request-review-event")
    assert review_keys[:3] == ["action", "review", "pull_request"], review_keys
    review_schema = spec["components"]["schemas"]["pull-request-review-event"]
    review = pick(component_example(spec, "pull-request-review"),
                  list(review_schema["properties"]["review"]["properties"]))
    review["user"] = user(review["user"])
    minimal = minimal_pull(spec, the_pull)
    return {
        "PullRequestEvent": {"action": "opened", "number": the_pull["number"],
                             "pull_request": minimal},
        "IssuesEvent": {"action": "opened", "issue": the_issue},
        "IssueCommentEvent": {"action": "created", "issue": the_issue, "comment": comment},
        "PullRequestReviewEvent": {"action": "created", "review": review,
                                   "pull_request": minimal},
    }


def main(source: str) -> None:
    spec = json.loads(Path(source).read_text("utf-8"))
    the_issue = issue(example(spec, "/repos/{owner}/{repo}/issues")[0])
    the_pull = pull(example(spec, "/repos/{owner}/{repo}/pulls/{pull_number}"))
    me = example(spec, "/user", "response-with-public-profile-information")
    fixtures = {
        "user.json": {**user(me), **pick(me, ("name", "company", "blog", "location", "email",
                                              "created_at", "updated_at"))},
        "events.json": example(spec, "/users/{username}/events"),
        "event_payloads.json": event_payloads(spec, the_issue, the_pull),
        "issues.json": [the_issue],
        "commits.json": [commit(example(spec, "/repos/{owner}/{repo}/commits")[0])],
        "pull.json": the_pull,
    }
    for name, value in fixtures.items():
        (HERE / name).write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n",
                                 "utf-8")
        print(f"{name}: {(HERE / name).stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
