"""OpenAI CLIP tokenization with truncation reporting.

The ids are those of OpenAI's ``clip.tokenize(texts, truncate=True)``: the start-of-text id,
the byte-pair encoding of the cleaned, lower-cased text, the end-of-text id, zero padding up to
the context length. A text whose ids do not fit is cut to the context length and its last id is
forced to end-of-text, which is what the official R2-Tuning query extractor does. The BPE itself
comes from open_clip's ``SimpleTokenizer``, which ships OpenAI's vocabulary file unchanged; only the
framing (start/end ids, padding, the cut) is written here, because open_clip's ``__call__`` does not
say which texts it cut and r2cli reports them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from r2cli.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

START_OF_TEXT_ID = 49406  # "<start_of_text>" in OpenAI's vocabulary
END_OF_TEXT_ID = 49407  # "<end_of_text>"; also the largest id, which CLIP's text pooling relies on
CONTEXT_LENGTH = 77  # positions of every CLIP text tower released by OpenAI


@lru_cache(maxsize=1)
def _bpe_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def check_texts(texts: object, name: str = "texts") -> list[str]:
    """Return ``texts`` as a list of strings.

    Raises:
        UsageError: ``texts`` is not a list/tuple of ``str`` (a bare string is refused because
            iterating it would tokenize single characters).
    """
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise UsageError(f"{name} must be a list of strings, got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise UsageError(f"{name}[{index}] must be a string, got {type(text).__name__}")
    return list(texts)


def encode(text: str) -> list[int]:
    """BPE ids of one text without the start/end ids (cleaned and lower-cased like OpenAI CLIP)."""
    return list(_bpe_tokenizer().encode(text))


def tokenize(texts: list[str], context_length: int = CONTEXT_LENGTH) -> tuple["torch.Tensor", list[bool]]:
    """Tokenize ``texts`` exactly like OpenAI's ``clip.tokenize(texts, truncate=True)``.

    Returns:
        ``(ids, truncated)``: ``ids`` is an int64 tensor ``[len(texts), context_length]``;
        ``truncated[i]`` is True when text ``i`` had more ids than fit and was cut.

    Raises:
        UsageError: ``texts`` is not a list of strings, or ``context_length`` < 2.
    """
    import torch

    texts = check_texts(texts)
    if context_length < 2:
        raise UsageError(f"context_length must be >= 2 (room for start and end ids), got {context_length}")
    ids = torch.zeros(len(texts), context_length, dtype=torch.long)  # [n, context_length]
    truncated: list[bool] = []
    for row, text in enumerate(texts):
        sequence = [START_OF_TEXT_ID, *encode(text), END_OF_TEXT_ID]
        cut = len(sequence) > context_length
        if cut:
            sequence = sequence[:context_length]
            sequence[-1] = END_OF_TEXT_ID
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        truncated.append(cut)
    return ids, truncated
