"""Embeddings with token-id input: the ids are read as ``cl100k_base`` (what clients such as
LangChain tokenize with for OpenAI's embedding models) and embedded as the text they stand for,
so the guard scans text and any embedding model can serve them.

LangChain's ``OpenAIEmbeddings`` with its defaults tokenizes with tiktoken, which downloads its
vocabulary on first use. This machine has no network, so the test points tiktoken's cache at the
copy of the same vocabulary that ships with Bastion (tiktoken checks its hash), as a user with a
network would have had it downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langchain_openai import OpenAIEmbeddings

from bastion.usage import cl100k
from tests.gateway.helpers import assert_openai_error
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayProcess
from tests.support.openai_spec import validate

#: "Hello, world!" in cl100k_base.
HELLO_IDS = [9906, 11, 1917, 0]
#: Where tiktoken caches a downloaded vocabulary: the SHA-1 of its URL.
_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _embed(http: httpx.Client, model: str, value: object) -> list[list[float]]:
    response = http.post("/v1/embeddings", json={"model": model, "input": value})
    assert response.status_code == 200, response.text
    validate("CreateEmbeddingResponse", response.json())
    return [item["embedding"] for item in response.json()["data"]]


def test_the_vocabulary_decodes_what_tiktoken_encodes() -> None:
    assert cl100k.decode(HELLO_IDS) == "Hello, world!"
    assert cl100k.decode([100257]) == "<|endoftext|>"
    with pytest.raises(cl100k.UnknownTokenId):
        cl100k.decode([100256])  # between the ordinary and the special tokens


@pytest.mark.parametrize("shape", ["one", "batch"])
def test_token_ids_embed_like_the_text_they_stand_for(http: httpx.Client, shape: str) -> None:
    ids: object = HELLO_IDS if shape == "one" else [HELLO_IDS, [15339, 1917]]  # "hello world"
    texts: object = "Hello, world!" if shape == "one" else ["Hello, world!", "hello world"]
    assert _embed(http, "local/minilm", ids) == _embed(http, "local/minilm", texts)


def test_an_upstream_receives_the_decoded_text(http: httpx.Client, fake: FakeUpstream) -> None:
    _embed(http, "fake-embed", [HELLO_IDS])
    assert fake.requests("fake-embed")[-1].body["input"] == ["Hello, world!"]


@pytest.mark.parametrize("ids", [[1, 100256], [[1, 2], [-1]], [[1, 2], [10**9]]])
def test_ids_outside_the_vocabulary_are_a_400(http: httpx.Client, ids: list[object]) -> None:
    response = http.post("/v1/embeddings", json={"model": "local/minilm", "input": ids})
    assert response.status_code == 400
    body = response.json()
    assert_openai_error(body, param="input")
    validate("ErrorResponse", body)
    assert "cl100k_base" in body["error"]["message"] and "as text" in body["error"]["message"]


@pytest.fixture
def tiktoken_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    name = hashlib.sha1(_TIKTOKEN_URL.encode()).hexdigest()
    with gzip.open(cl100k.VOCABULARY, "rb") as vocabulary:
        (tmp_path / name).write_bytes(vocabulary.read())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    yield tmp_path


def test_langchain_with_its_defaults(gateway: GatewayProcess, http: httpx.Client, tiktoken_cache: Path) -> None:
    embeddings = OpenAIEmbeddings(  # type: ignore[call-arg]
        model="text-embedding-3-small", base_url=gateway.url + "/v1", api_key="test-key", max_retries=0
    )
    texts = ["a first text", "a second, longer text about connection pooling"]
    vectors = embeddings.embed_documents(texts)
    direct = _embed(http, "text-embedding-3-small", texts)
    assert len(vectors) == len(direct)
    for got, expected in zip(vectors, direct, strict=True):
        assert got == pytest.approx(expected, abs=1e-6)
    assert len(embeddings.embed_query("a query")) == 384


def test_langchain_without_tokenizing(gateway: GatewayProcess) -> None:
    embeddings = OpenAIEmbeddings(  # type: ignore[call-arg]
        model="local/minilm", base_url=gateway.url + "/v1", api_key="test-key", check_embedding_ctx_length=False
    )
    vectors = embeddings.embed_documents(["a first text", "a second text"])
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
