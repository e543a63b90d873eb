"""
C{connector.git.sync}: the user's own commits in local repositories, per branch.

The cursor keeps each branch's tip as last seen, so the next sync walks only
C{old..new}; a rewritten branch (the old tip no longer an ancestor) is walked
back to a little before its last sync instead. Each commit's identity is its
patch id (C{git patch-id --stable}), so a cherry-pick, a rebased copy or the
same commit seen on another branch or clone is stored once, with the branches
and commits it was seen as. Merge commits are left out (their changes are the
merged commits'). Each repository's commits and cursor are written in one
transaction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime

from enttok.common.deferreds import Yielding
from enttok.connectors.git import store as git_store
from enttok.connectors.git.discover import candidates
from enttok.connectors.git.parse import LOG_OPTIONS, BadLogOutput
from enttok.connectors.git.process import GitError, GitMissing, GitRunner, find_git, git_environ
from enttok.connectors.git.store import ReadWalk
from enttok.jobs.context import JobContext
from enttok.store import Database
from enttok.validation import Field, optional, timestamp

#: How far back a first sync (or a new repository) looks unless the payload says.
FIRST_SYNC_DAYS = 30
#: A rewritten branch is walked back to this long before its last sync.
REWRITE_OVERLAP = timedelta(days=1)
STATE_KEY = "git"

PAYLOAD = {
    "since": Field(optional(timestamp), None,
                   "How far back a first sync of a repository looks (default 30 days)."),
}

#: The remote whose C{HEAD} names the trunk; without one, the first of L{_TRUNKS}.
_REMOTE = "origin"
_TRUNKS = ("main", "master", "trunk", "develop")
#: Diff options shared by the walks (no program configured by a repository runs).
_DIFF = ("--no-merges", "--no-ext-diff", "--no-textconv", "--no-renames")


@define
class Walk:
    """
    One branch's commits to read: C{tip}, without C{old} (its tip at the last
    sync) and C{exclude} (tips of branches walked before it), back to C{since}.
    """

    branch: str
    tip: str
    old: str | None = None
    exclude: list[str] = field(factory=list)
    since: str | None = None

    def args(self) -> list[str]:
        return [self.tip, *(f"^{t}" for t in ([self.old] if self.old else []) + self.exclude),
                *([f"--since={self.since}"] if self.since else [])]


@define
class RepoResult:
    """What one repository's sync read."""

    read: list[ReadWalk] = field(factory=list)
    walks: int = 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _author_args(emails: Sequence[str]) -> list[str]:
    # Fixed strings, case-insensitive, matched against "Name <email>".
    return ["--fixed-strings", "--regexp-ignore-case",
            *(f"--author=<{email}>" for email in emails)]


class GitSync:
    """One run of the sync over every configured repository."""

    def __init__(self, ctx: JobContext, db: Database, runner: GitRunner, clock: IReactorTime,
                 settings: Mapping[str, Any], state_key: str = STATE_KEY) -> None:
        self.ctx = ctx
        self.db = db
        self.git = runner
        self.clock = clock
        self.settings = settings
        self.state_key = state_key
        self.started = datetime.fromtimestamp(clock.seconds(), UTC)
        self.cursor: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.saved = 0
        self.commits = 0
        self.walks = 0
        self.synced: list[str] = []
        self.fraction = 0.0
        #: Repositories synced by their common git folder: C{{folder: path}}.
        self.common_dirs: dict[str, str] = {}

    def _warn(self, message: str, **meta: Any) -> None:
        self.warnings.append(message)
        self.ctx.warn(message, **meta)

    @inlineCallbacks
    def run(self) -> Yielding[dict[str, Any]]:
        """Fires with the job's result (see L{_result})."""
        self.cursor = yield self.ctx.track(self.db.run(git_store.get_cursor, self.state_key))
        found = yield self.ctx.run_blocking(
            candidates, self.settings["repositories"], self.settings["search_roots"],
            self.settings["search_depth"])
        # Repositories no longer configured (or found) are forgotten with the
        # next write: should they come back, their walk starts afresh.
        known = self.cursor.get("repos")
        self.cursor["repos"] = {path: state for path, state in known.items()
                                if path in found.paths} if isinstance(known, dict) else {}
        if not self.settings["repositories"] and not self.settings["search_roots"]:
            self._warn("no repositories configured (connectors.git.repositories "
                       "or search_roots)")
        for message in found.warnings:
            self._warn(message)
        for number, path in enumerate(found.paths):
            self.ctx.check_canceled()
            self.fraction = number / max(1, len(found.paths))
            self.ctx.progress(self.fraction,
                              f"{number}/{len(found.paths)} repositories synced")
            try:
                yield self._repo(path)
            except (GitError, BadLogOutput) as e:
                self._warn(f"{path}: git failed: {e}", path=path)
            except GitMissing as e:
                self._warn(str(e))
                break
        self.ctx.progress(1.0, f"{len(found.paths)}/{len(found.paths)} repositories synced")
        return self._result()

    def _result(self) -> dict[str, Any]:
        return {"status": "ok", "items_new": self.saved, "commits": self.commits,
                "repositories": self.synced, "walks": self.walks,
                "git_commands": self.git.commands, "warnings": self.warnings}

    @inlineCallbacks
    def _probe(self, path: str) -> Yielding[str | None]:
        """
        The name of the repository at C{path} (its folder's), or C{None} with a
        warning when it is none, or a worktree of one already synced.
        """
        out = yield self.git.run(path, ["rev-parse", "--is-bare-repository",
                                        "--absolute-git-dir", "--show-prefix",
                                        "--git-common-dir"])
        lines = out.stdout.decode("utf-8", "replace").split("\n")
        if out.code != 0 or len(lines) < 4:
            said = out.stderr.strip().splitlines()
            # Other refusals (e.g. "detected dubious ownership") are passed on.
            reason = ("not a git repository" if not said or "not a git repository" in said[0]
                      else said[0].removeprefix("fatal: "))
            self._warn(f"{path}: {reason}", path=path)
            return None
        if lines[2]:
            self._warn(f"{path}: not a git repository (a folder inside one)", path=path)
            return None
        # Worktrees of one repository share its branches: sync them once.
        common = os.path.realpath(os.path.join(path, lines[3]))
        if common in self.common_dirs:
            self.ctx.info(f"{path}: a worktree of {self.common_dirs[common]}, synced with it",
                          path=path)
            return None
        self.common_dirs[common] = path
        name = os.path.basename(path.rstrip(os.sep))
        return name[:-4] if lines[0] == "true" and name.endswith(".git") else name

    @inlineCallbacks
    def _repo(self, path: str) -> Yielding[None]:
        """Sync one repository: its walks read, then written with its cursor."""
        name = yield self._probe(path)
        if name is None:
            return
        emails = list(self.settings["author_emails"]) or (yield self._config_email(path))
        if not emails:
            self._warn(f"{path}: no author e-mail (set connectors.git.author_emails "
                       f"or git config user.email)", path=path)
            return
        tips, times, order = yield self._branches(path)
        walks = self._walks(path, tips, times, order)
        result = RepoResult()
        for walk in (yield self._settle(path, walks, tips)):
            self.ctx.check_canceled()
            yield self._walk(path, name, walk, emails, result)
        # Parsed on the job pool: neither the reactor nor the database thread waits.
        items, commits = yield self.ctx.run_blocking(git_store.items_of, result.read, name, path)
        repo_cursor = {"branches": {branch: {"tip": tip, "synced_at": self._now()}
                                    for branch, tip in tips.items()}}
        cursor = {**self.cursor, "repos": {**self.cursor.get("repos", {}), path: repo_cursor}}
        self.saved += yield self.ctx.track(self.db.run(
            git_store.save_items, items, self._now(), self.state_key, cursor))
        # Only now: a repository that failed must not move on with the next one's write.
        self.cursor = cursor
        self.commits += commits
        if commits:
            self.ctx.progress(self.fraction, f"{name}: {commits} commits read")
        self.walks += result.walks
        self.synced.append(path)

    def _now(self) -> str:
        return _iso(datetime.fromtimestamp(self.clock.seconds(), UTC))

    @inlineCallbacks
    def _config_email(self, path: str) -> Yielding[list[str]]:
        out = yield self.git.run(path, ["config", "--get", "user.email"])
        email = out.stdout.decode("utf-8", "replace").strip()
        return [email] if out.code == 0 and email else []

    @inlineCallbacks
    def _branches(self, path: str) -> Yielding[tuple[dict[str, str], dict[str, int], list[str]]]:
        """
        C{({branch: tip}, {branch: tip's commit time}, order)}: the branches in
        the order they are walked, the trunk first (the branch C{origin/HEAD}
        names, else main, master, trunk or develop), then the checked-out one,
        then the others by name.
        """
        raw = yield self.git.check(path, [
            "for-each-ref", "--sort=refname",
            "--format=%(HEAD)%00%(objecttype)%00%(refname)%00%(objectname)%00%(symref)"
            "%00%(committerdate:unix)",
            "refs/heads", f"refs/remotes/{_REMOTE}/HEAD"])
        tips: dict[str, str] = {}
        times: dict[str, int] = {}
        head = remote_trunk = None
        for line in raw.decode("utf-8", "replace").splitlines():
            current, kind, ref, tip, target, when = [*line.split("\x00"), *[""] * 6][:6]
            if kind != "commit":
                continue
            if ref.startswith("refs/heads/"):
                branch = ref.removeprefix("refs/heads/")
                tips[branch] = tip
                times[branch] = int(when) if when.isdigit() else 0
                head = branch if current == "*" else head
            elif target.startswith(f"refs/remotes/{_REMOTE}/"):
                remote_trunk = target.removeprefix(f"refs/remotes/{_REMOTE}/")
        trunk = remote_trunk if remote_trunk in tips else next(
            (b for b in _TRUNKS if b in tips), None)
        lead = [b for b in dict.fromkeys([trunk, head]) if b is not None]
        return tips, times, lead + [b for b in tips if b not in lead]

    def _walks(self, path: str, tips: Mapping[str, str], times: Mapping[str, int],
               order: Sequence[str]) -> list[Walk]:
        """
        What to read per branch: a moved branch from its old tip; a new one (or
        any on a first sync) back to the first-sync date, leaving out what the
        last sync saw and what the branches walked before it hold, so a commit
        is credited to the branch it was made on. A new branch whose tip is
        older than that date has nothing to read (many stale branches cost no
        walk).
        """
        known = self.cursor.get("repos", {}).get(path, {}).get("branches", {})
        start = (datetime.fromisoformat(self.ctx.payload["since"].replace("Z", "+00:00"))
                 if self.ctx.payload["since"] else
                 self.started - timedelta(days=FIRST_SYNC_DAYS))
        since = _iso(start)
        seen: list[str] = [entry["tip"] for entry in known.values()
                           if isinstance(entry, dict) and isinstance(entry.get("tip"), str)]
        walks = []
        for branch in order:
            tip = tips[branch]
            entry = known.get(branch)
            old = entry.get("tip") if isinstance(entry, dict) else None
            if old == tip:
                continue
            if isinstance(old, str):
                # Dated for the case it was rewritten: see _settle.
                walks.append(Walk(branch, tip, old, since=str(entry.get("synced_at") or since)))
            elif times[branch] >= start.timestamp():
                walks.append(Walk(branch, tip, exclude=[
                    t for t in dict.fromkeys(seen) if t != tip], since=since))
            seen.append(tip)
        return walks

    @inlineCallbacks
    def _settle(self, path: str, walks: list[Walk],
                tips: Mapping[str, str]) -> Yielding[list[Walk]]:
        """
        The walks of moved branches settled: C{old..new} when the old tip is an
        ancestor (no date bound needed), else a walk of the new tip back to
        L{REWRITE_OVERLAP} before the branch's last sync, without what the
        other branches hold (a branch rebased onto main gains only its own
        commits, not main's recent ones).
        """
        settled = []
        for walk in walks:
            if walk.old is None:
                settled.append(walk)
                continue
            out = yield self.git.run(path, ["merge-base", "--is-ancestor", walk.old, walk.tip])
            if out.code == 0:
                settled.append(Walk(walk.branch, walk.tip, walk.old))
            else:  # rewritten (1), or the old tip is gone (128)
                synced = datetime.fromisoformat(str(walk.since).replace("Z", "+00:00"))
                others = [t for b, t in tips.items() if b != walk.branch and t != walk.tip]
                settled.append(Walk(walk.branch, walk.tip, exclude=list(dict.fromkeys(others)),
                                    since=_iso(synced - REWRITE_OVERLAP)))
        return settled

    @inlineCallbacks
    def _walk(self, path: str, name: str, walk: Walk, emails: Sequence[str],
              result: RepoResult) -> Yielding[None]:
        """
        Read one walk: two passes of git over the same range, run side by side
        (C{log --numstat}, and C{log -p} piped into C{patch-id}). Their output
        is only kept here; it is parsed on a thread (see L{git_store.items_of}).
        """
        filters = [*_DIFF, *_author_args(emails)]
        patches = self.git.pipe(
            path, ["log", "-p", "--format=commit %H", *filters, *walk.args(), "--"],
            ["patch-id", "--stable"])
        try:
            log = yield self.git.check(
                path, ["log", *LOG_OPTIONS, *filters, *walk.args(), "--"])
        except BaseException:
            patches.addErrback(lambda _: None)
            patches.cancel()
            raise
        result.read.append(ReadWalk(walk.branch, log, (yield patches)))
        result.walks += 1


def sync_git(ctx: JobContext, db: Database, reactor: Any, settings: Mapping[str, Any],
             environ: Mapping[str, str], state_key: str = STATE_KEY,
             clock: IReactorTime | None = None) -> Deferred[dict[str, Any]]:
    """
    Sync the repositories of C{settings} (the C{connectors.git} section).

    @param reactor: provides C{IReactorProcess} and C{IReactorTime}.
    @param environ: the environment git is looked up in (C{PATH}) and runs with.
    @param clock: what "now" is read from (default C{reactor}).
    @return: fires with the job's result: C{items_new}, C{commits},
        C{repositories} (the paths synced), C{warnings} (bad paths,
        non-repositories, a missing git), C{walks}, C{git_commands}.
    """
    try:
        git = find_git(environ)
    except GitMissing as e:
        ctx.warn(str(e))
        return succeed({"status": "git_missing", "items_new": 0, "commits": 0,
                        "repositories": [], "walks": 0, "git_commands": 0,
                        "warnings": [str(e)]})
    runner = GitRunner(reactor, git, git_environ(environ))
    sync = GitSync(ctx, db, runner, clock if clock is not None else reactor, settings, state_key)
    return sync.run()
