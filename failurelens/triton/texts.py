"""Text embeddings of an IMAGE_TEXT model served by Triton (tokenised here, encoded there)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from failurelens.data.tokenizer import ClipTokenizer
from failurelens.triton.client import TritonClient


class TextEncoder:
    """Tokenises with the model's CLIP BPE tokenizer and runs its ``<model>__text`` Triton model
    in batches of the model's ``max_batch_size``."""

    def __init__(self, triton: TritonClient) -> None:
        self.triton = triton
        self._tokenizers: dict[int, ClipTokenizer] = {}

    def encode(
        self,
        text_model: str,
        context_length: int,
        texts: Sequence[str],
        *,
        check: Callable[[], None] | None = None,
        timeout: Callable[[float], float] | None = None,
    ) -> np.ndarray:
        """float32 [len(texts), E] embeddings (as the model outputs them, not normalised)."""
        tok = self._tokenizers.get(context_length)
        if tok is None:
            tok = self._tokenizers.setdefault(context_length, ClipTokenizer(context_length=context_length))
        ids = tok.encode(list(texts), check=check)
        step = self.triton.max_batch_size(text_model, 256)
        chunks = []
        for s in range(0, len(ids), step):
            if check:
                check()
            t = timeout(60.0) if timeout else 60.0
            chunks.append(self.triton.infer(text_model, {"input_ids": ids[s : s + step]}, ["embeddings"], timeout_s=t)["embeddings"])
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), np.float32)
