"""The embedding models enttok can use, by name, and where their files live.

The C{embedding_model} setting names one model or several joined by C{+}
(their rankings are fused); an absolute path names a local sentence-transformers
folder. Each model's vectors are stored under its I{vector id}: two runtimes of
one model (sentence-transformers and its ONNX export, equal to cosine 0.9999)
share one id, so switching between them re-embeds nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import frozen

from enttok.index.embedder import (
    DEFAULT_MODEL_ID,
    IEmbedder,
    SentenceTransformerEmbedder,
    SubprocessEmbedder,
)
from enttok.validation import ValidationError, absolute_path, text

USE_MULTILINGUAL = "use-multilingual"
MINILM_ONNX = "minilm-onnx"
MINILM = "minilm"
#: The file an ONNX export writes last (what it was made from, and its parity).
MINILM_ONNX_MANIFEST = "manifest.json"
MODELS_DIR_ENV = "ENTTOK_MODELS_DIR"


@frozen
class ModelSpec:
    """One model: its name in settings, its vectors' id and length, and how to load it."""

    name: str
    vector_id: str
    dimension: int
    runtime: str
    languages: str
    licence: str
    build: Callable[[int | None], IEmbedder]


def _use(threads: int | None) -> IEmbedder:
    from enttok.index.use_embedder import UniversalSentenceEncoder

    return UniversalSentenceEncoder(MODELS[USE_MULTILINGUAL].vector_id, threads,
                                    cache=user_models_dir())


def _minilm_onnx(threads: int | None) -> IEmbedder:
    from enttok.index.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(models_dir() / MINILM_ONNX, DEFAULT_MODEL_ID, 384, 256, threads)


def _minilm(threads: int | None) -> IEmbedder:
    return SentenceTransformerEmbedder(None, threads)


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in [
    ModelSpec(USE_MULTILINGUAL, "use-multilingual-v3", 512, "numpy",
              "16 languages incl. Korean, one space across them", "Apache-2.0", _use),
    ModelSpec(MINILM_ONNX, DEFAULT_MODEL_ID, 384, "onnxruntime (exported at build time)",
              "English", "Apache-2.0", _minilm_onnx),
    ModelSpec(MINILM, DEFAULT_MODEL_ID, 384, "sentence-transformers on torch (reference)",
              "English", "Apache-2.0", _minilm),
]}

#: What an unset C{embedding_model} means.
DEFAULT_MODELS: tuple[str, ...] = (USE_MULTILINGUAL,)


class UnknownModel(ValueError):
    """A model name that is neither known nor an absolute path."""


def parse_models(setting: str | None) -> tuple[str, ...]:
    """The model names an C{embedding_model} value stands for. @raise UnknownModel."""
    if not setting:
        return DEFAULT_MODELS
    if os.path.isabs(setting):
        return (setting,)
    names = tuple(part.strip() for part in setting.split("+"))
    for name in names:
        if name not in MODELS:
            raise UnknownModel(f"unknown embedding model {name!r}; known: {', '.join(MODELS)}")
    if len(set(names)) != len(names):
        raise UnknownModel(f"embedding model named twice in {setting!r}")
    return names


def check_setting(value: Any, field: str) -> str:
    """A validation check (L{enttok.validation}) for an C{embedding_model} value."""
    setting = text(max_length=4096)(value, field)
    if os.path.isabs(setting) or setting.startswith("~"):
        return absolute_path(setting, field)
    try:
        parse_models(setting)
    except UnknownModel as e:
        raise ValidationError(field, str(e)) from None
    return setting


def vector_id(name: str) -> str:
    """The id the vectors of model C{name} (or of a local folder) are stored under."""
    spec = MODELS.get(name)
    return spec.vector_id if spec else f"local:{os.path.abspath(name)}"


def dimension(name: str) -> int:
    """The vectors' length (0 for a local folder: known once loaded)."""
    spec = MODELS.get(name)
    return spec.dimension if spec else 0


def in_process_embedder(name: str, threads: int | None = None) -> IEmbedder:
    """Model C{name} in this process (the embedding worker's side)."""
    spec = MODELS.get(name)
    return spec.build(threads) if spec else SentenceTransformerEmbedder(name, threads)


def make_embedder(name: str, threads: int | None = None) -> IEmbedder:
    """Model C{name} in a worker process, so loading and encoding never stall the reactor."""
    return SubprocessEmbedder(name, vector_id(name), dimension(name), threads)


def models_dir() -> Path:
    """
    Where generated model files (the ONNX export) live: C{$ENTTOK_MODELS_DIR}; in a
    frozen app, C{models/} beside the executable; else the user's cache folder.
    """
    configured = os.environ.get(MODELS_DIR_ENV)
    if configured:
        return Path(configured)
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent / "models"
    return user_models_dir()


def user_models_dir() -> Path:
    """A writable place for files derived from a model at run time (C{$ENTTOK_MODELS_DIR},
    else the user's cache folder): an installed app's own folder may be read-only."""
    configured = os.environ.get(MODELS_DIR_ENV)
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("enttok-e", appauthor=False)) / "models"
