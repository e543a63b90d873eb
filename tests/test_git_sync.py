"""connector.git.sync against repositories made here with git init (real git, real processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, TestCase

from enttok.connectors.git import store as git_store
from enttok.connectors.git.parse import BadLogOutput
from enttok.connectors.git.sync import STATE_KEY, sync_git
from enttok.jobs.context import JobContext
from enttok.store import Database
from enttok.threads import run_inline

ME = "me@example.com"
OTHER = "other@example.com"
#: 2024-05-10T00:00:00Z: "now" for the syncs (commits are dated around it).
NOW = 1_715_299_200.0
SINCE = "2024-04-01T00:00:00Z"

GIT = shutil.which("git")


class Recorder:
    """A job context's reporter that keeps the notes (warnings) a sync made."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str, dict[str, Any]]] = []

    def progress(self, job_id: str, fraction: float, message: str | None) -> None:
        pass

    def note(self, job_id: str, level: str, message: str, meta: dict[str, Any]) -> None:
        self.notes.append((level, message, meta))


def on_reactor(f: Callable[..., None], *args: Any) -> None:
    f(*args)


def isolated_env(home: str) -> dict[str, str]:
    """An environment where no global or system git configuration applies."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": home, "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.path.join(home, "gitconfig"), "LANG": "C.UTF-8"}


class Repo:
    """A repository made by the test, committed to with chosen authors and dates."""

    def __init__(self, path: Path, env: dict[str, str], init: bool = True) -> None:
        self.path = path
        self.env = env
        if not init:  # one made otherwise (a clone)
            return
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Me")
        self.git("config", "user.email", ME)

    def git(self, *args: str, date: str = "2024-05-01T10:00:00+00:00",
            email: str = ME, committed: str | None = None) -> str:
        env = {**self.env, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": committed or date,
               "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_NAME": email.split("@")[0],
               "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_NAME": email.split("@")[0]}
        done = subprocess.run(["git", "-C", str(self.path), *args], env=env, check=True,
                              capture_output=True, timeout=60)
        return done.stdout.decode("utf-8").strip()

    def commit(self, subject: str, files: dict[str, str], date: str = "2024-05-01T10:00:00Z",
               email: str = ME, committed: str | None = None) -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            self.git("add", "--", name)
        self.git("commit", "-q", "-m", subject, date=date, email=email, committed=committed)
        return self.git("rev-parse", "HEAD")


class GitSyncTests(TestCase):
    """Each test makes its repositories in a temporary folder outside any repository."""

    def setUp(self) -> None:
        if GIT is None:
            raise SkipTest("git is not installed")
        self.root = Path(tempfile.mkdtemp(prefix="enttok-git-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.env = isolated_env(str(self.root))
        self.db = Database(self.mktemp(), run_inline)
        self.db.open()
        self.addCleanup(self.db.connection.close)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.recorder = Recorder()

    def repo(self, name: str) -> Repo:
        return Repo(self.root / name, self.env)

    def settings(self, repositories: list[str], **extra: Any) -> dict[str, Any]:
        return {"enabled": True, "repositories": repositories, "search_roots": [],
                "search_depth": 3, "author_emails": [ME], "interval_minutes": 15, **extra}

    def sync(self, settings: dict[str, Any], env: dict[str, str] | None = None) -> Any:
        ctx = JobContext("job_test", "connector.git.sync", {"since": SINCE}, self.recorder,
                         run_inline, on_reactor, self.clock)
        return sync_git(ctx, self.db, reactor, settings, env or self.env, clock=self.clock)

    def items(self) -> dict[str, dict[str, Any]]:
        rows = self.db.connection.execute(
            "select identity, source, kind, repo, title, occurred_at, raw_json from activity "
            "order by occurred_at, identity").fetchall()
        return {r[0]: {"source": r[1], "kind": r[2], "repo": r[3], "title": r[4],
                       "occurred_at": r[5], **json.loads(r[6])} for r in rows}

    def by_title(self) -> dict[str, dict[str, Any]]:
        return {item["title"]: item for item in self.items().values()}

    def cursor(self) -> dict[str, Any]:
        row = self.db.connection.execute("select cursor from sync_state where connector = ?",
                                         (STATE_KEY,)).fetchone()
        return dict(json.loads(row[0]))

    @inlineCallbacks
    def test_first_sync(self) -> Any:
        """
        The user's own commits with subject, branch, files and line counts, in
        UTC; another author's commits and commits before C{since} are left out.
        """
        repo = self.repo("app")
        old = repo.commit("too old", {"old.txt": "x\n"}, date="2024-03-01T10:00:00Z")
        first = repo.commit("첫 커밋: 로그인 화면", {"로그인/화면.txt": "가\n나\n다\n"},
                            date="2024-05-01T18:30:00+09:00")
        repo.commit("not mine", {"b.txt": "b\n"}, date="2024-05-02T10:00:00Z", email=OTHER)
        second = repo.commit("Fix parser", {"로그인/화면.txt": "가\n다\n", "p.py": "1\n2\n"},
                             date="2024-05-03T10:00:00Z")
        result = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((result["items_new"], result["commits"], result["warnings"]),
                         (2, 2, []))
        items = self.by_title()
        self.assertEqual(set(items), {"첫 커밋: 로그인 화면", "Fix parser"})
        korean = items["첫 커밋: 로그인 화면"]
        self.assertEqual((korean["source"], korean["kind"], korean["repo"]),
                         ("git", "commit", "app"))
        self.assertEqual(korean["occurred_at"], "2024-05-01T09:30:00Z")
        self.assertEqual((korean["sha"], korean["branches"], korean["author_email"]),
                         (first, ["main"], ME))
        self.assertEqual((korean["files"], korean["files_changed"], korean["insertions"],
                          korean["deletions"]), (["로그인/화면.txt"], 1, 3, 0))
        fix = items["Fix parser"]
        self.assertEqual((sorted(fix["files"]), fix["insertions"], fix["deletions"]),
                         (["p.py", "로그인/화면.txt"], 2, 1))
        self.assertEqual(fix["sha"], second)
        self.assertTrue(fix["patch_id"])
        identities = set(self.items())
        self.assertEqual(identities, {f"git:{korean['patch_id']}", f"git:{fix['patch_id']}"})
        self.assertNotIn(old, {i["sha"] for i in self.items().values()})
        self.assertEqual(self.cursor()["repos"][str(repo.path)]["branches"]["main"]["tip"],
                         second)

    @inlineCallbacks
    def test_incremental(self) -> Any:
        """The next sync reads only what moved: nothing, then the one new commit."""
        repo = self.repo("app")
        repo.commit("one", {"a.txt": "1\n"})
        repo.commit("two", {"a.txt": "2\n"}, date="2024-05-02T10:00:00Z")
        yield self.sync(self.settings([str(repo.path)]))
        again = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((again["items_new"], again["commits"], again["walks"]), (0, 0, 0))
        tip = repo.commit("three", {"a.txt": "3\n"}, date="2024-05-03T10:00:00Z")
        third = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((third["items_new"], third["commits"], third["walks"]), (1, 1, 1))
        self.assertEqual(sorted(self.by_title()), ["one", "three", "two"])
        self.assertEqual(self.cursor()["repos"][str(repo.path)]["branches"]["main"]["tip"], tip)

    @inlineCallbacks
    def test_unreadable_output_keeps_cursor(self) -> Any:
        """
        A repository whose output cannot be read is a warning, and its cursor
        does not move with the next repository's write: the next sync reads it.
        """
        first = self.repo("first")
        first.commit("first work", {"a.txt": "first\n"})
        second = self.repo("second")
        second.commit("second work", {"a.txt": "second\n"})
        real = git_store.items_of

        def refuse_first(walks: Any, repo: str, path: str) -> Any:
            if repo == "first":
                raise BadLogOutput("unexpected output")
            return real(walks, repo, path)

        self.patch(git_store, "items_of", refuse_first)
        result = yield self.sync(self.settings([str(first.path), str(second.path)]))
        self.assertEqual(result["warnings"], [f"{first.path}: git failed: unexpected output"])
        self.assertEqual(list(self.cursor()["repos"]), [str(second.path)])
        self.patch(git_store, "items_of", real)
        again = yield self.sync(self.settings([str(first.path), str(second.path)]))
        self.assertEqual((again["commits"], again["warnings"]), (1, []))
        self.assertEqual(sorted(self.by_title()), ["first work", "second work"])

    @inlineCallbacks
    def test_forgotten_repository(self) -> Any:
        """A repository taken out of the settings leaves the cursor; its items stay."""
        first = self.repo("first")
        first.commit("first work", {"a.txt": "first\n"})
        second = self.repo("second")
        second.commit("second work", {"a.txt": "second\n"})
        yield self.sync(self.settings([str(first.path), str(second.path)]))
        self.assertEqual(sorted(self.cursor()["repos"]), [str(first.path), str(second.path)])
        first.commit("more", {"b.txt": "more\n"}, date="2024-05-02T10:00:00Z")
        yield self.sync(self.settings([str(first.path)]))
        self.assertEqual(list(self.cursor()["repos"]), [str(first.path)])
        self.assertEqual(sorted(self.by_title()), ["first work", "more", "second work"])

    @inlineCallbacks
    def test_branch_and_merge(self) -> Any:
        """
        A branch's own commits are credited to it; merged into main they gain
        main; the merge commit itself is not an item.
        """
        repo = self.repo("app")
        repo.commit("base", {"a.txt": "1\n"})
        repo.git("checkout", "-q", "-b", "feature")
        repo.commit("feature one", {"f.txt": "1\n"}, date="2024-05-02T10:00:00Z")
        repo.commit("feature two", {"f.txt": "2\n"}, date="2024-05-02T11:00:00Z")
        repo.git("checkout", "-q", "main")
        repo.commit("main work", {"m.txt": "1\n"}, date="2024-05-02T12:00:00Z")
        result = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual(result["commits"], 4)
        items = self.by_title()
        self.assertEqual({t: i["branches"] for t, i in items.items()},
                         {"base": ["main"], "feature one": ["feature"],
                          "feature two": ["feature"], "main work": ["main"]})
        repo.git("merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature",
                 date="2024-05-03T10:00:00Z")
        merged = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((merged["items_new"], merged["commits"]), (0, 2))
        items = self.by_title()
        self.assertNotIn("Merge branch 'feature'", items)
        self.assertEqual(items["feature one"]["branches"], ["feature", "main"])
        self.assertEqual(len(self.items()), 4)

    @inlineCallbacks
    def test_trunk_first(self) -> Any:
        """
        The shared history is credited to the trunk, not to the checked-out
        feature branch; a branch made after a sync reads only its own commits.
        """
        repo = self.repo("app")
        repo.commit("base", {"a.txt": "1\n"})
        repo.git("checkout", "-q", "-b", "feature")
        repo.commit("feature work", {"f.txt": "1\n"}, date="2024-05-02T10:00:00Z")
        yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual({t: i["branches"] for t, i in self.by_title().items()},
                         {"base": ["main"], "feature work": ["feature"]})
        repo.git("checkout", "-q", "-b", "spike", "main")
        repo.commit("spike work", {"s.txt": "1\n"}, date="2024-05-03T10:00:00Z")
        result = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((result["commits"], result["walks"]), (1, 1))
        self.assertEqual(self.by_title()["base"]["branches"], ["main"])

    @inlineCallbacks
    def test_stale_branches_cost_no_walk(self) -> Any:
        """
        A branch whose tip is older than the first-sync window is not walked,
        but its tip is kept: a commit on it later is read from there.
        """
        repo = self.repo("app")
        repo.commit("ancient", {"a.txt": "1\n"}, date="2024-01-10T10:00:00Z")
        for n in range(3):
            repo.git("branch", f"old-{n}")
        repo.commit("recent", {"r.txt": "1\n"}, date="2024-05-02T10:00:00Z")
        first = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((first["walks"], first["commits"]), (1, 1))
        self.assertEqual(sorted(self.cursor()["repos"][str(repo.path)]["branches"]),
                         ["main", "old-0", "old-1", "old-2"])
        repo.git("checkout", "-q", "old-1")
        repo.commit("revived", {"v.txt": "1\n"}, date="2024-05-03T10:00:00Z")
        again = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((again["walks"], again["commits"]), (1, 1))
        self.assertEqual(self.by_title()["revived"]["branches"], ["old-1"])
        self.assertNotIn("ancient", self.by_title())

    @inlineCallbacks
    def test_trunk_of_origin(self) -> Any:
        """In a clone, the trunk is the branch origin/HEAD names."""
        upstream = self.repo("upstream")
        upstream.commit("base", {"a.txt": "1\n"})
        upstream.git("branch", "-m", "main", "stable")
        clone = self.root / "clone"
        upstream.git("clone", "-q", str(upstream.path), str(clone))
        repo = Repo(clone, self.env, init=False)
        repo.git("checkout", "-q", "-b", "main")
        repo.commit("local work", {"l.txt": "1\n"}, date="2024-05-02T10:00:00Z")
        yield self.sync(self.settings([str(clone)]))
        self.assertEqual({t: i["branches"] for t, i in self.by_title().items()},
                         {"base": ["stable"], "local work": ["main"]})

    @inlineCallbacks
    def test_cherry_pick_is_one_item(self) -> Any:
        """A cherry-picked commit has the same patch id: one item, both commits listed."""
        repo = self.repo("app")
        repo.commit("base", {"a.txt": "1\n"})
        repo.git("checkout", "-q", "-b", "hotfix")
        picked = repo.commit("Fix crash on empty note", {"fix.txt": "fixed\n"},
                             date="2024-05-02T10:00:00Z")
        repo.git("checkout", "-q", "main")
        repo.commit("other", {"o.txt": "o\n"}, date="2024-05-02T11:00:00Z")
        repo.git("cherry-pick", picked, date="2024-05-02T10:00:00Z",
                 committed="2024-05-03T09:00:00Z")
        copy = repo.git("rev-parse", "HEAD")
        self.assertNotEqual(copy, picked)
        result = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((result["commits"], result["items_new"]), (4, 3))
        fix = self.by_title()["Fix crash on empty note"]
        self.assertEqual(sorted(fix["shas"]), sorted([picked, copy]))
        self.assertEqual(sorted(fix["branches"]), ["hotfix", "main"])
        self.assertEqual(fix["occurred_at"], "2024-05-02T10:00:00Z")

    @inlineCallbacks
    def test_rebased_branch(self) -> Any:
        """
        A branch rebased after a sync (its old tip no longer an ancestor) is
        walked back to its last sync: the rebased copies are the same items.
        """
        repo = self.repo("app")
        repo.commit("base", {"a.txt": "1\n"})
        repo.git("checkout", "-q", "-b", "topic")
        repo.commit("topic one", {"t1.txt": "1\n"}, date="2024-05-02T10:00:00Z")
        old_tip = repo.commit("topic two", {"t2.txt": "2\n"}, date="2024-05-02T11:00:00Z")
        repo.git("checkout", "-q", "main")
        repo.commit("upstream", {"u.txt": "u\n"}, date="2024-05-03T10:00:00Z")
        yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual(len(self.items()), 4)
        # The rebase happens after that sync ("now" moves on by a day), onto
        # work on main committed since.
        self.clock.advance(86_400)
        repo.commit("more upstream", {"u2.txt": "u\n"}, date="2024-05-10T11:00:00Z")
        repo.git("checkout", "-q", "topic")
        repo.git("rebase", "-q", "main", date="2024-05-02T10:00:00Z",
                 committed="2024-05-10T12:00:00Z")
        new_tip = repo.git("rev-parse", "HEAD")
        self.assertNotEqual(new_tip, old_tip)
        result = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((result["items_new"], result["commits"]), (1, 3))
        items = self.by_title()
        self.assertEqual(items["topic two"]["shas"], [old_tip, new_tip])
        self.assertEqual(items["more upstream"]["branches"], ["main"])
        self.assertEqual(len(self.items()), 5)

    @inlineCallbacks
    def test_amended_message(self) -> Any:
        """A commit amended after a sync (same change, new words) is one item, renamed."""
        repo = self.repo("app")
        repo.commit("base", {"a.txt": "1\n"})
        first = repo.commit("Fix tpyo", {"b.txt": "fixed\n"}, date="2024-05-09T09:00:00Z")
        yield self.sync(self.settings([str(repo.path)]))
        repo.git("commit", "-q", "--amend", "-m", "Fix typo in 로그인 form",
                 date="2024-05-09T09:00:00Z", committed="2024-05-10T08:00:00Z")
        amended = repo.git("rev-parse", "HEAD")
        result = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((result["items_new"], result["commits"]), (0, 1))
        items = self.by_title()
        self.assertEqual(sorted(items), ["Fix typo in 로그인 form", "base"])
        self.assertEqual(items["Fix typo in 로그인 form"]["shas"], [first, amended])

    @inlineCallbacks
    def test_bad_paths_warn(self) -> Any:
        """
        A missing folder, a plain folder and a folder inside a repository are
        warnings in the result; the good repository is still synced, and an
        empty one (no commit yet) is no warning.
        """
        repo = self.repo("good")
        repo.commit("good work", {"a.txt": "1\n"})
        plain = self.root / "plain folder"
        plain.mkdir()
        inside = repo.path / "docs"
        inside.mkdir()
        missing = self.root / "없는 폴더"
        empty = self.repo("empty")
        result = yield self.sync(self.settings(
            [str(missing), str(plain), str(inside), str(repo.path), str(empty.path)]))
        self.assertEqual(result["repositories"], [str(repo.path), str(empty.path)])
        self.assertEqual(result["warnings"], [
            f"{missing}: no such folder",
            f"{plain}: not a git repository",
            f"{inside}: not a git repository (a folder inside one)"])
        self.assertEqual(list(self.by_title()), ["good work"])
        warned = [message for level, message, _ in self.recorder.notes if level == "warn"]
        self.assertEqual(warned, result["warnings"])

    @inlineCallbacks
    def test_refused_repository(self) -> Any:
        """git's own reason for refusing a repository is the warning."""
        repo = self.repo("future")
        repo.commit("work", {"a.txt": "1\n"})
        repo.git("config", "core.repositoryformatversion", "99")
        result = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual(result["repositories"], [])
        self.assertEqual(result["warnings"],
                         [f"{repo.path}: Expected git repo version <= 1, found 99"])

    @inlineCallbacks
    def test_canceled(self) -> Any:
        """A canceled sync stops its git commands and stores nothing."""
        repo = self.repo("app")
        repo.commit("work", {"a.txt": "1\n"})
        d = self.sync(self.settings([str(repo.path)]))
        d.cancel()
        yield self.assertFailure(d, CancelledError)
        self.assertEqual(self.items(), {})
        self.assertIsNone(self.db.connection.execute(
            "select cursor from sync_state where connector = ?", (STATE_KEY,)).fetchone())

    @inlineCallbacks
    def test_git_missing(self) -> Any:
        """Without git on the PATH the sync ends with a warning, not a crash."""
        repo = self.repo("app")
        repo.commit("work", {"a.txt": "1\n"})
        empty = self.root / "bin"
        empty.mkdir()
        result = yield self.sync(self.settings([str(repo.path)]),
                                 env={**self.env, "PATH": str(empty)})
        self.assertEqual((result["status"], result["items_new"]), ("git_missing", 0))
        self.assertEqual(result["warnings"], ["git was not found on the PATH"])
        self.assertEqual(self.items(), {})

    @inlineCallbacks
    def test_search_roots(self) -> Any:
        """Repositories under a search root are found down to search_depth, not below."""
        near = self.repo("work/client/app")
        near.commit("near", {"a.txt": "near\n"})
        far = self.repo("work/a/b/c/deep")
        far.commit("far", {"a.txt": "far\n"})
        result = yield self.sync(self.settings([], search_roots=[str(self.root / "work")],
                                               search_depth=2))
        self.assertEqual(result["repositories"], [str(near.path)])
        self.assertEqual(list(self.by_title()), ["near"])
        deeper = yield self.sync(self.settings([], search_roots=[str(self.root / "work")],
                                               search_depth=4))
        self.assertEqual(sorted(deeper["repositories"]), sorted([str(near.path), str(far.path)]))
        self.assertEqual(sorted(self.by_title()), ["far", "near"])

    @inlineCallbacks
    def test_config_email(self) -> Any:
        """With no author e-mails in the settings, the repository's user.email is used."""
        repo = self.repo("app")
        repo.commit("mine", {"a.txt": "1\n"})
        repo.commit("theirs", {"b.txt": "1\n"}, email=OTHER, date="2024-05-02T10:00:00Z")
        result = yield self.sync(self.settings([str(repo.path)], author_emails=[]))
        self.assertEqual(result["commits"], 1)
        self.assertEqual(list(self.by_title()), ["mine"])

    @inlineCallbacks
    def test_binary_changes(self) -> Any:
        """Two different changes of one binary file are two items (patch ids differ)."""
        repo = self.repo("design")
        for n, when in enumerate(("2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z",
                                  "2024-05-03T10:00:00Z")):
            (repo.path / "logo.png").write_bytes(bytes([0, 255, n]) * 50)
            repo.git("add", "logo.png")
            repo.git("commit", "-q", "-m", f"logo v{n}", date=when)
        result = yield self.sync(self.settings([str(repo.path)]))
        self.assertEqual((result["commits"], result["items_new"]), (3, 3))
        item = self.by_title()["logo v2"]
        self.assertEqual((item["files"], item["insertions"], item["deletions"]),
                         (["logo.png"], 0, 0))

    @inlineCallbacks
    def test_nfd_file_name(self) -> Any:
        """A Korean file name written decomposed (NFD, as macOS does) is kept as written."""
        import unicodedata
        name = unicodedata.normalize("NFD", "회의록.md")
        repo = self.repo("notes")
        repo.commit("회의록 추가", {name: "내용\n"})
        yield self.sync(self.settings([str(repo.path)]))
        item = self.by_title()["회의록 추가"]
        self.assertEqual(item["files"], [name])
        self.assertEqual(unicodedata.normalize("NFC", item["files"][0]), "회의록.md")

    @inlineCallbacks
    def test_same_change_in_two_repositories(self) -> Any:
        """
        The same change committed to two repositories (a config update made
        everywhere) is one item by its patch id, listing both; a worktree of a
        repository is synced with it, not again.
        """
        first = self.repo("service-a")
        first.commit("Update CI config", {"ci.yml": "version: 2\n"})
        second = self.repo("service-b")
        second.commit("Update CI config", {"ci.yml": "version: 2\n"},
                      date="2024-05-01T10:05:00Z")
        worktree = self.root / "service-a-wt"
        first.git("worktree", "add", "-q", "-b", "wt", str(worktree))
        result = yield self.sync(self.settings(
            [str(first.path), str(second.path), str(worktree)]))
        self.assertEqual(result["repositories"], [str(first.path), str(second.path)])
        self.assertEqual(result["warnings"], [])
        [item] = self.items().values()
        self.assertEqual((item["repo"], item["repos"]), ("service-a", ["service-a", "service-b"]))
        self.assertEqual(item["occurred_at"], "2024-05-01T10:00:00Z")

    @inlineCallbacks
    def test_damaged_repository(self) -> Any:
        """
        A repository git cannot read (a tree object lost) is a warning; the
        others are synced and nothing of it is stored, cursor included.
        """
        bad = self.repo("damaged")
        bad.commit("lost", {"a.txt": "lost\n"})
        tree = bad.git("rev-parse", "HEAD^{tree}")
        (bad.path / ".git" / "objects" / tree[:2] / tree[2:]).unlink()
        good = self.repo("good")
        good.commit("kept", {"a.txt": "kept\n"})
        result = yield self.sync(self.settings([str(bad.path), str(good.path)]))
        self.assertEqual(result["repositories"], [str(good.path)])
        [warning] = result["warnings"]
        self.assertTrue(warning.startswith(f"{bad.path}: git failed: "), warning)
        self.assertEqual(list(self.by_title()), ["kept"])
        self.assertEqual(list(self.cursor()["repos"]), [str(good.path)])
