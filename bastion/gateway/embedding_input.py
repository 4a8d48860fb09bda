"""An embeddings request's input as texts: strings as sent, token ids read as ``cl100k_base``.
Shared by the live endpoint and batch lines, so both accept and refuse the same inputs."""

from __future__ import annotations

from typing import Any

from bastion.dialects.openai_schema import EmbeddingRequest
from bastion.errors import InvalidRequest
from bastion.usage import cl100k


def _decode_token_ids(value: Any) -> list[str]:
    """Token-id input (one list of ids, or a list of them) as text: ids are read as OpenAI's
    ``cl100k_base``, the tokenizer of its embedding models that clients tokenize with."""
    rows = value if value and isinstance(value[0], list) else [value]
    try:
        return [cl100k.decode(row) for row in rows]
    except cl100k.UnknownTokenId as exc:
        raise InvalidRequest(
            f"Invalid request: input holds token id {exc.token_id}, which is not a cl100k_base token (token-id "
            "input is read as cl100k_base, the tokenizer of OpenAI's embedding models). Send the input as text.",
            param="input",
        ) from None


def embedding_texts(parsed: EmbeddingRequest, body: dict[str, Any]) -> list[str]:
    """The texts to embed; token-id input is replaced in ``body`` by the text it stands for (the
    guard scans, and the upstream embeds, that text). 400 for an empty string."""
    if isinstance(parsed.input, str):
        inputs = [parsed.input]
    elif all(isinstance(item, str) for item in parsed.input):
        inputs = [item for item in parsed.input if isinstance(item, str)]
    else:
        inputs = _decode_token_ids(parsed.input)
        body["input"] = inputs
    if any(not text for text in inputs):
        raise InvalidRequest("Invalid request: input must not contain empty strings.", param="input")
    return inputs
