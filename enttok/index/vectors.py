"""The hnswlib index of chunk vectors: a derived file, brought up to date from SQLite.

hnswlib is not safe for concurrent insert and query, so every call takes one lock.
All methods block; call them from a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from zope.interface import Attribute, Interface, implementer

DEFAULT_M = 16
EF_CONSTRUCTION = 200
EF_SEARCH = 96
MIN_CAPACITY = 1024
#: Compact (rebuild from live vectors) when this share of the slots is deleted.
COMPACT_RATIO = 0.2
#: A saved file this far behind the database (changed labels per live vector)
#: is rebuilt rather than brought up to date (see L{VectorIndex.load}).
CATCH_UP_SHARE = 0.25


def model_file(path: Path, model_id: str) -> Path:
    """
    The hnsw file of C{model_id}'s vectors beside C{path} (C{index.hnsw} gives
    C{index.<model>.hnsw}): one file per model, so a switch back finds its file.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._")[:60]
    if slug != model_id:
        slug += "-" + hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:10]
    return path.with_name(f"{path.stem}.{slug}{path.suffix}")


class IVectorIndex(Interface):
    """
    An hnsw index of chunk vectors (cosine ANN over chunk ids), mirrored to one
    file: L{VectorIndex} in this process, or
    L{enttok.index.vector_client.RemoteVectorIndex} in the vector host. Every
    method blocks: call it from a thread.
    """

    path = Attribute("The hnsw file (its sidecar: the same name with C{.json} added).")
    dimension = Attribute("The vectors' length (0 until reset or loaded).")
    model_id = Attribute("The id of the model whose vectors it holds (empty until reset or "
                         "loaded).")
    version = Attribute("The database's C{vectors_version} it reflects (-1: unknown): set by "
                        "C{reset} and C{load}, assigned by its owner, written by C{save}.")
    dirty = Attribute("Whether it changed since it was loaded or saved.")
    live_count = Attribute("How many chunk ids it holds (not counting deleted ones).")
    ready = Attribute("Whether it is built (reset or loaded); if not, queries find nothing.")

    def deleted_fraction() -> float:
        """The share of its slots that hold deleted vectors."""

    def reset(model_id: str, dimension: int, version: int) -> None:
        """Start empty for C{model_id} vectors of C{dimension}."""

    def load(model_id: str, dimension: int, version: int,
             live_ids: Callable[[], Iterable[int]]) -> list[int] | None:
        """
        Load the saved file and bring it up to date with C{live_ids()}.

        @return: the live ids the file lacks (the caller adds them), or C{None}:
            rebuild from stored vectors.
        """

    def add(ids: Sequence[int], vectors: Any) -> None:
        """Insert (or replace) C{vectors} under C{ids}. @raise ValueError: wrong length."""

    def delete(ids: Iterable[int]) -> None:
        """Mark C{ids} deleted (ids it does not hold are ignored)."""

    def compact_if_needed() -> bool:
        """Rebuild from the live vectors if many slots are deleted; whether it did."""

    def query(vector: Any, k: int,
              allowed: Callable[[int], bool] | None = None) -> list[tuple[int, float]]:
        """
        The C{k} nearest chunk ids (of those C{allowed} says yes to, if given)
        with cosine distances, nearest first.

        @raise ValueError: C{vector} is not of the index's dimension.
        """

    def save() -> None:
        """Write the file and its sidecar atomically, if built."""


@implementer(IVectorIndex)
class VectorIndex:
    """
    Cosine ANN over chunk ids.

    @ivar version: the database's C{vectors_version} this index reflects.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._meta_path = path.with_name(path.name + ".json")
        self._lock = threading.Lock()
        self._index: Any = None
        self._live: set[int] = set()
        self.dimension = 0
        self.model_id = ""
        self.version = -1
        self.dirty = False

    # State

    @property
    def live_count(self) -> int:
        return len(self._live)

    @property
    def ready(self) -> bool:
        return self._index is not None

    def deleted_fraction(self) -> float:
        if self._index is None or not self._index.element_count:
            return 0.0
        return 1.0 - len(self._live) / int(self._index.element_count)

    # Building

    def reset(self, model_id: str, dimension: int, version: int) -> None:
        """Start empty for C{model_id} vectors of C{dimension}."""
        with self._lock:
            self._index = self._new(dimension, MIN_CAPACITY)
            self._live = set()
            self.model_id, self.dimension, self.version = model_id, dimension, version
            self.dirty = True

    @staticmethod
    def _new(dimension: int, capacity: int) -> Any:
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=dimension)
        index.init_index(max_elements=capacity, ef_construction=EF_CONSTRUCTION, M=DEFAULT_M,
                         allow_replace_deleted=True)
        index.set_ef(EF_SEARCH)
        return index

    def load(self, model_id: str, dimension: int, version: int,
             live_ids: Callable[[], Iterable[int]]) -> list[int] | None:
        """
        Load the saved file if it holds C{model_id} vectors of C{dimension}, and
        bring it up to date with the database when a crash lost its last saves.

        Chunk ids are never reused and a chunk's text (so its vector) never
        changes, so the file is current once the labels it has that are no
        longer live are marked deleted and the live ones it lacks are added.

        @param live_ids: the chunk ids that have vectors, as of C{version}.
        @return: the live ids the file lacks (the caller adds their stored
            vectors), or C{None}: rebuild from stored vectors (no usable file,
            or one so far behind that a rebuild is cheaper and leaves no holes).
        """
        try:
            meta = json.loads(self._meta_path.read_text())
        except (OSError, ValueError):
            return None
        if meta.get("model_id") != model_id or meta.get("dimension") != dimension:
            return None
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=dimension)
        try:
            index.load_index(str(self.path), allow_replace_deleted=True)
        except (RuntimeError, OSError, ValueError):
            return None
        live = set(live_ids())
        missing: list[int] = []
        changed = meta.get("version") != version or meta.get("live") != len(live)
        if changed:
            labels = set(index.get_ids_list())  # marked-deleted ones included
            missing = sorted(live - labels)
            limit = CATCH_UP_SHARE * len(live)
            if len(missing) > limit:
                return None
            deleted = 0
            for label in labels - live:
                with contextlib.suppress(RuntimeError):  # unless deleted before the save
                    index.mark_deleted(label)
                    deleted += 1
            if deleted + len(missing) > limit:
                return None
        index.set_ef(EF_SEARCH)
        with self._lock:
            self._index, self._live = index, live - set(missing)
            self.model_id, self.dimension, self.version = model_id, dimension, version
            self.dirty = changed
        return missing

    def add(self, ids: Sequence[int], vectors: Any) -> None:
        """Insert (or replace) vectors under C{ids}."""
        if not len(ids):
            return
        with self._lock:
            index = self._require()
            self._check_dimension(vectors)
            needed = index.element_count + len(ids)
            if needed > index.get_max_elements():
                index.resize_index(max(needed, index.get_max_elements() * 2))
            index.add_items(vectors, list(ids), replace_deleted=True)
            self._live.update(ids)
            self.dirty = True

    def delete(self, ids: Iterable[int]) -> None:
        with self._lock:
            index = self._require()
            for label in ids:
                if label in self._live:
                    index.mark_deleted(label)
                    self._live.discard(label)
                    self.dirty = True

    def compact_if_needed(self) -> bool:
        """Rebuild from the live vectors when over L{COMPACT_RATIO} of slots are deleted."""
        with self._lock:
            index = self._index
            if index is None or index.element_count < MIN_CAPACITY:
                return False
            if 1.0 - len(self._live) / index.element_count <= COMPACT_RATIO:
                return False
            ids = sorted(self._live)
            fresh = self._new(self.dimension, max(MIN_CAPACITY, int(len(ids) * 1.25)))
            if ids:
                fresh.add_items(index.get_items(ids, return_type="numpy"), ids)
            self._index = fresh
            self.dirty = True
            return True

    def _check_dimension(self, vectors: Any) -> None:
        """hnswlib corrupts memory (and the process dies) on vectors of another length."""
        if vectors.shape[-1] != self.dimension:
            raise ValueError(f"vectors of {vectors.shape[-1]} dimensions given to an index "
                             f"of {self.dimension}")

    def _require(self) -> Any:
        if self._index is None:
            raise RuntimeError("vector index is not built")
        return self._index

    # Querying

    def query(self, vector: Any, k: int,
              allowed: Callable[[int], bool] | None = None) -> list[tuple[int, float]]:
        """
        The C{k} nearest chunk ids with cosine distances, nearest first.

        @raise ValueError: C{vector} is not of the index's dimension.
        """
        with self._lock:
            if self._index is None or not self._live:
                return []
            self._check_dimension(vector)
            k = min(k, len(self._live))
            if allowed is not None:
                # hnswlib fails when fewer than k items pass the filter; halving k
                # from there would drop results that do pass.
                k = min(k, sum(1 for label in self._live if allowed(label)))
            while k > 0:
                try:
                    labels, distances = self._index.knn_query(vector, k=k, filter=allowed)
                except RuntimeError:
                    k //= 2  # fewer than k items passed the filter
                    continue
                return [(int(label), float(d)) for label, d in zip(labels[0], distances[0],
                                                                    strict=True)]
            return []

    # Saving

    def save(self) -> None:
        """Write the index and its sidecar atomically (temp file + rename)."""
        with self._lock:
            if self._index is None:
                return
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            self._index.save_index(str(tmp))
            os.replace(tmp, self.path)
            meta = {"version": self.version, "model_id": self.model_id,
                    "dimension": self.dimension, "live": len(self._live)}
            tmp_meta = self._meta_path.with_name(f".{self._meta_path.name}.tmp")
            tmp_meta.write_text(json.dumps(meta))
            os.replace(tmp_meta, self._meta_path)
            self.dirty = False
