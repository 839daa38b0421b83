"""Text encoder: sentences in, L2-normalised float32 rows out (ONNX via onnxruntime, no torch).

Runs an exported sentence-embedding model (``kind: text`` manifest, e.g. ``minilm-l6-v2``):
the ``tokenizers``-library file named by the manifest turns text into ``input_ids`` /
``attention_mask`` (truncated to ``max_length``, padded to the longest text of the batch) and the
graph does the pooling and normalisation itself; rows are normalised again here regardless.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .manifest import ModelKindError, ModelLoadError, ModelManifest, ModelNotFoundError
from .onnx_model import OnnxModel, as_manifest

DEFAULT_BATCH = 32
DEFAULT_MAX_LENGTH = 128
# Texts longer than max_length * CHARS_PER_TOKEN characters are cut (at whitespace) before
# tokenising, so a megabyte of text costs no more than a page; if the cut text turns out not to
# fill max_length tokens, the whole text is tokenised after all (results never change).
CHARS_PER_TOKEN = 32
# Only the CPU provider unless asked otherwise: text queries are few and short, and TensorRT
# would build a new engine for every new sequence length.
DEFAULT_TEXT_PROVIDERS = ("CPUExecutionProvider",)


class TextModelError(ModelLoadError):
    """A text model whose graph or tokenizer does not match its manifest."""


class TextKindError(TextModelError, ModelKindError):
    """A model of another kind given as the text encoder."""


def _l2_rows(x: np.ndarray, model_id: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if not np.isfinite(x).all():
        raise RuntimeError(f"output of '{model_id}' has non-finite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms <= 0).any():
        raise RuntimeError(f"output of '{model_id}' has all-zero rows; cannot L2-normalise")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


class TextEncoder(OnnxModel):
    """An exported ONNX sentence-embedding model plus its ``tokenizers`` file.

    ``encode(texts)`` -> (N, dim) float32 L2-normalised rows; an empty list gives (0, dim).
    Empty strings encode as [CLS] [SEP]; long texts are truncated to ``max_length`` tokens.
    """

    kind = "text"
    default_providers = DEFAULT_TEXT_PROVIDERS
    kind_error = TextKindError

    def __init__(
        self,
        manifest: str | Path | ModelManifest,
        providers: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH,
        intra_op_threads: int = 0,
    ) -> None:
        from tokenizers import Tokenizer

        m = as_manifest(manifest)
        if m.kind == "text":  # the tokenizer is checked before the (larger) model is loaded
            tok_path = m.tokenizer_path
            if tok_path is None:
                raise TextModelError(f"manifest of '{m.model_id}' names no tokenizer file")
            if not tok_path.is_file():
                raise ModelNotFoundError(f"tokenizer for '{m.model_id}' not found: {tok_path}")
        try:
            super().__init__(m, providers, intra_op_threads)
        except (TextModelError, ModelKindError):
            raise
        except ModelLoadError as exc:
            raise TextModelError(str(exc)) from exc
        assert m.tokenizer_path is not None
        self.max_length = int(m.max_length or DEFAULT_MAX_LENGTH)
        self.batch_size = max(1, int(batch_size))
        self.tokenizer = Tokenizer.from_file(str(m.tokenizer_path))
        self._configure_tokenizer(m.extra)
        self._check_graph(self.model_path)

    def _configure_tokenizer(self, extra: dict[str, Any]) -> None:
        """Truncate to max_length and pad to the batch's longest text, whatever the file says."""
        padding = extra.get("padding") if isinstance(extra.get("padding"), dict) else {}
        pad_token = str(padding.get("pad_token", "[PAD]"))
        pad_id = padding.get("pad_id", self.tokenizer.token_to_id(pad_token))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(
            pad_id=int(pad_id or 0), pad_token=pad_token, direction="right", length=None
        )

    def _check_graph(self, path: Path) -> None:
        m = self.manifest
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        self._ids_name = m.input_name if m.input_name in inputs else "input_ids"
        missing = {self._ids_name, "attention_mask"} - inputs
        if missing:
            raise TextModelError(
                f"{path}: graph lacks input(s) {sorted(missing)}; inputs: {sorted(inputs)}"
            )
        unknown = inputs - {self._ids_name, "attention_mask", "token_type_ids"}
        if unknown:
            raise TextModelError(f"{path}: unexpected graph inputs {sorted(unknown)}")
        self._needs_type_ids = "token_type_ids" in inputs
        if m.output_name not in outputs:
            raise TextModelError(
                f"{path}: graph has no output '{m.output_name}' (manifest output_name); "
                f"outputs: {sorted(outputs)}"
            )
        got = self._run(["probe"]).shape[1]
        if got != self.dim:
            raise TextModelError(
                f"{path}: output dimension {got} but the manifest says output_dim {self.dim}"
            )

    def _clip(self, text: str) -> str:
        limit = self.max_length * CHARS_PER_TOKEN
        if len(text) <= limit:
            return text
        cut = max(text.rfind(c, 0, limit) for c in " \n\t")
        return text[:cut] if cut > 0 else text  # never split a word

    def _tokenize(self, texts: Sequence[str]) -> list[Any]:
        clipped = [self._clip(t) for t in texts]
        enc = self.tokenizer.encode_batch(clipped)
        redo = [
            i
            for i, (t, c, e) in enumerate(zip(texts, clipped, enc, strict=True))
            if c is not t and not e.overflowing
        ]
        if redo:  # a clipped text that did not reach max_length: tokenise all of it
            return self.tokenizer.encode_batch(list(texts))
        return enc

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        enc = self._tokenize(texts)
        ids = np.asarray([e.ids for e in enc], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {self._ids_name: ids, "attention_mask": mask}
        if self._needs_type_ids:
            feeds["token_type_ids"] = np.zeros_like(ids)
        out = self.session.run([self.manifest.output_name], feeds)[0]
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32 L2-normalised rows, one per text."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings; wrap a single text in a list")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._run(texts[s : s + self.batch_size]) for s in range(0, len(texts), self.batch_size)
        ]
        return _l2_rows(np.concatenate(parts), self.model_id)

    def __repr__(self) -> str:
        return f"TextEncoder({self.model_id!r}, dim={self.dim}, provider={self.provider!r})"
