"""The indexing job types: C{vault.scan}, C{index.update}, C{index.rebuild}."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from enttok.common.deferreds import Yielding
from enttok.common.locks import INDEX_LOCK
from enttok.index.indexer import VaultIndex, list_vault, read_notes
from enttok.jobs.context import JobContext, JobFailed
from enttok.jobs.registry import JobType
from enttok.validation import (
    Field,
    ValidationError,
    absolute_path,
    array,
    boolean,
    optional,
    text,
    timestamp,
)
from enttok.vault.walker import FileEntry, WalkWarning

Submit = Callable[[str, Any], Deferred[Any]]
#: The vault's notes and the walk's warnings (L{list_vault}).
Listing = tuple[list[FileEntry], list[WalkWarning]]
#: The known notes' C{(size, mtime_ns)} by path, and the stale ones.
NoteStats = tuple[dict[str, tuple[int, int]], set[str]]
Setting = Callable[[], Any]

MAX_PATHS = 100_000


def vault_relative(roots: tuple[str, ...], path: str) -> str:
    """
    C{path} (absolute, or relative to the vault) as a vault-relative POSIX path.

    The check is lexical (no file system access): symlinks are checked again
    when the file is read (L{enttok.index.indexer.read_notes}).

    @param roots: the vault folder as configured and as its real path.
    @raise ValueError: when it points outside the vault.
    """
    if "\x00" in path:  # no file system call accepts one
        raise ValueError(f"{path!r} contains a NUL character")
    path = unicodedata.normalize("NFC", path)
    for root in roots:
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path))
        rel = os.path.relpath(full, root)
        if rel != "." and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            posix = PurePosixPath(*rel.split(os.sep))
            if posix.suffix.lower() != ".md" or any(p.startswith(".") for p in posix.parts):
                raise ValueError(f"{path!r} is not a note (a .md file outside hidden folders)")
            return posix.as_posix()
    raise ValueError(f"{path!r} is outside the vault")


def _root(index: VaultIndex, vault_path: str | None) -> str:
    try:
        return index.vault_root(vault_path)
    except ValueError as e:
        raise JobFailed("no_vault", str(e)) from None


def _configured_vault_only(vault_path: Setting) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """
    A submit check: a payload's C{vault_path} must be the configured vault.

    The index holds one vault; notes of another would mix with its notes under the
    same relative paths. Switching vaults is a settings change.
    """

    def check(payload: dict[str, Any]) -> dict[str, Any]:
        given, configured = payload["vault_path"], vault_path()
        if given is None or (configured and os.path.realpath(given)
                             == os.path.realpath(configured)):
            return payload
        raise ValidationError("payload.vault_path", (
            f"{given!r} is not the configured vault ({configured!r}): set vault_path in "
            f"/settings to index another vault"))

    return check


def _merge_update(queued: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Fold a new C{index.update} into a queued one: the union of both path sets."""
    deleted = set(queued["deleted_paths"]) | set(new["deleted_paths"])
    changed = (set(queued["changed_paths"]) - set(new["deleted_paths"])) | set(
        new["changed_paths"])
    return {"changed_paths": sorted(changed), "deleted_paths": sorted(deleted - changed)}


def update_job(index: VaultIndex, vault_path: Setting) -> JobType:
    """C{index.update}: index only the given notes (paths absolute or vault-relative)."""

    def check(payload: dict[str, Any]) -> dict[str, Any]:
        configured = vault_path()
        try:
            real = index.vault_root(configured)
            roots = (os.path.normpath(configured), real)
        except ValueError as e:
            raise ValidationError("payload.changed_paths", str(e)) from None
        clean: dict[str, list[str]] = {}
        for name in ("changed_paths", "deleted_paths"):
            paths = []
            for i, path in enumerate(payload[name]):
                try:
                    paths.append(vault_relative(roots, path))
                except ValueError as e:
                    raise ValidationError(f"payload.{name}[{i}]", str(e)) from None
            clean[name] = sorted(set(paths))
        return clean

    @inlineCallbacks
    def handle(ctx: JobContext) -> Yielding[dict[str, Any]]:
        root = _root(index, vault_path())
        changed = ctx.payload["changed_paths"]
        deleted = ctx.payload["deleted_paths"]
        ctx.progress(0.0, f"indexing 0/{len(changed)} notes")
        result: dict[str, Any] = yield index.update(ctx, root, changed, deleted)
        return result

    paths = array(text(max_length=4096), MAX_PATHS)
    return JobType(
        name="index.update",
        payload={"changed_paths": Field(paths, [], "Notes to (re)index."),
                 "deleted_paths": Field(paths, [], "Notes to drop from the index.")},
        handler=handle, lock=INDEX_LOCK, merge=_merge_update, check=check,
        description="Index only the given notes.")


def scan_job(index: VaultIndex, vault_path: Setting, submit: Submit) -> JobType:
    """C{vault.scan}: find new, changed and deleted notes; store metadata; queue an update."""

    @inlineCallbacks
    def handle(ctx: JobContext) -> Yielding[dict[str, Any]]:
        root = _root(index, ctx.payload["vault_path"] or vault_path())
        force = ctx.payload["force_full"]
        ctx.progress(0.0, "listing the vault")
        (files, walk_warnings), (stats, stale) = yield _listing_and_stats(ctx, index, root)
        ctx.check_canceled()
        for warning in walk_warnings:
            ctx.warn(f"{warning.rel_path}: {warning.message}", path=warning.rel_path)
        seen = {f.rel_path for f in files}
        deleted = sorted(set(stats) - seen)
        cutoff_ns = _since_ns(ctx.payload["since"])
        # Read a file when it is new, or its size or mtime differ (and, with a since
        # cutoff, it was modified after it). Inline: a scan tests every file.
        candidates = [f.rel_path for f in files if force or (
            stats.get(f.rel_path) != (f.size, f.mtime_ns)
            and (cutoff_ns is None or f.mtime_ns >= cutoff_ns or f.rel_path not in stats))]
        known = (yield ctx.track(index.note_states(
            candidates if len(candidates) < 1000 else None))) if candidates else {}
        changed: list[str] = []
        warnings = len(walk_warnings)
        for start in range(0, len(candidates), 64):
            ctx.check_canceled()
            batch = candidates[start:start + 64]
            prepared = yield ctx.run_blocking(read_notes, root, batch, known, False, False)
            for rel, message in prepared.warnings:
                ctx.warn(f"{rel}: {message}", path=rel)
                warnings += 1
            if prepared.notes:
                yield ctx.track(index.save_metadata(prepared.notes))
            if prepared.unchanged:
                yield ctx.track(index.touch_notes(prepared.unchanged))
            changed += [n.path for n in prepared.notes]
            deleted += [p for p in prepared.vanished if p in known and p not in deleted]
            done = start + len(batch)
            ctx.progress(0.1 + 0.8 * done / len(candidates),
                         f"checking {done}/{len(candidates)} changed files")
        # Notes read now are stale (metadata saved, not indexed), and so are those an
        # interrupted update left behind.
        to_index = sorted(set(changed) | (stale & seen))
        update_id = embed_id = None
        if to_index or deleted:
            job, _ = yield submit("index.update", {
                "changed_paths": [os.path.join(root, p) for p in to_index],
                "deleted_paths": [os.path.join(root, p) for p in sorted(set(deleted))]})
            update_id = job.job_id
        elif (yield index.needs_embedding()):
            # Chunks an interrupted job left without vectors (no note changed since),
            # or a switch of model to finish.
            job, _ = yield submit("index.embed", {})
            embed_id = job.job_id
        return {"files": len(files), "new": len([p for p in changed if p not in stats]),
                "changed": len([p for p in changed if p in stats]), "deleted": len(set(deleted)),
                "unchanged": len(files) - len(changed), "warnings": warnings,
                "index_update_job": update_id, "index_embed_job": embed_id}

    return JobType(
        name="vault.scan",
        payload={"vault_path": Field(optional(absolute_path), None,
                                     "The vault to scan: only the vault_path setting "
                                     "(the default) is accepted."),
                 "since": Field(optional(timestamp), None,
                                "Only look at files modified since (deletions always)."),
                 "force_full": Field(boolean, False, "Re-read every file.")},
        handler=handle, lock=INDEX_LOCK, check=_configured_vault_only(vault_path),
        description="Detect changed notes.")


@inlineCallbacks
def _listing_and_stats(ctx: JobContext, index: VaultIndex,
                       root: str) -> Yielding[tuple[Listing, NoteStats]]:
    """
    The notes the database knows (L{index_store.note_stats}, on its thread), then
    the vault's files and warnings (L{list_vault}, a worker thread).

    One after the other, not side by side: both are mostly Python, and each
    gives up the GIL at every system call or SQLite step, then waits for the
    other to hand it back. Side by side, a 20,000-note scan took 250-360 ms
    (each half as long as the whole); in turn, 40 + 190 ms.
    """
    stats = yield ctx.track(index.note_stats())
    ctx.check_canceled()
    listing = yield ctx.run_blocking(list_vault, root, lambda: ctx.canceled)
    return listing, stats


def _since_ns(since: str | None) -> int | None:
    if since is None:
        return None
    from datetime import datetime

    return int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() * 1e9)


def rebuild_job(index: VaultIndex, vault_path: Setting,
                use_model: Callable[[str], Deferred[Any]],
                check_model: Callable[[str], object] | None = None) -> JobType:
    """
    C{index.rebuild}: full text and vectors from scratch, reusing stored embeddings.

    @param use_model: switch to an C{embedding_model} value (the setting's change
        queues the re-embedding, see L{embed_job}).
    @param check_model: raises L{ValueError} for a value that names no model.
    """
    vault_only = _configured_vault_only(vault_path)

    def check(payload: dict[str, Any]) -> dict[str, Any]:
        model = payload["embedding_model"]
        if model is not None and check_model is not None:
            try:
                check_model(model)
            except ValueError as e:
                raise ValidationError("payload.embedding_model", str(e)) from None
        return vault_only(payload)

    @inlineCallbacks
    def handle(ctx: JobContext) -> Yielding[dict[str, Any]]:
        if ctx.payload["embedding_model"] is not None:
            yield use_model(ctx.payload["embedding_model"])
        yield ctx.track(index.forget_embed_crashes())
        root = _root(index, ctx.payload["vault_path"] or vault_path())
        ctx.progress(0.0, "listing the vault")
        (files, walk_warnings), (known, _) = yield _listing_and_stats(ctx, index, root)
        for warning in walk_warnings:
            ctx.warn(f"{warning.rel_path}: {warning.message}", path=warning.rel_path)
        seen = {f.rel_path for f in files}
        yield ctx.track(index.clear_notes())
        yield ctx.track(index.rebuild_vectors())
        result: dict[str, Any] = yield index.update(ctx, root, [f.rel_path for f in files],
                                                    sorted(set(known) - seen),
                                                    skip_indexed=False)
        return result

    return JobType(
        name="index.rebuild",
        payload={"vault_path": Field(optional(absolute_path), None,
                                     "The vault to index: only the vault_path setting "
                                     "(the default) is accepted."),
                 "embedding_model": Field(optional(text(max_length=4096)), None,
                                          "Switch to this model (a name, names joined by "
                                          "+, or a local model folder) first; its vectors "
                                          "are embedded in the background.")},
        handler=handle, lock=INDEX_LOCK, check=check,
        description="Rebuild full text and vectors.")


def embed_job(index: VaultIndex) -> JobType:
    """
    C{index.embed}: embed chunks lacking vectors of the kept models (after a
    crash, or for a change of model), then switch to the target models.

    Queued by the daemon itself, at start and after a scan, when needed.
    """

    def handle(ctx: JobContext) -> Deferred[Any]:
        ctx.progress(0.0, "looking for chunks without vectors")
        return index.converge(ctx, ctx.payload["force"])

    return JobType(
        name="index.embed",
        payload={"force": Field(boolean, False, "Run even after the daemon died "
                                "repeatedly while embedding.")},
        handler=handle, lock=INDEX_LOCK,
        description="Embed chunks without vectors; finish a change of model.")
