"""Embeddings with token-id input: a 400 that names the alternative (send text, and how to make
LangChain do so), and LangChain's ``OpenAIEmbeddings`` against the running gateway.

LangChain's defaults (``check_embedding_ctx_length=True``) tokenize with tiktoken first, which
downloads its encoding file on first use; this machine has no network, so with the defaults
LangChain fails inside tiktoken before any request reaches the gateway. The test asserts exactly
that (rather than seeding tiktoken's cache), and that the setting the 400 names works."""

from __future__ import annotations

import httpx
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.gateway.helpers import assert_openai_error
from tests.support.gateway import GatewayProcess
from tests.support.openai_spec import validate


@pytest.mark.parametrize("ids", [[1, 2, 3], [[1, 2], [3, 4]]])
@pytest.mark.parametrize("model", ["fake-embed", "local/minilm"])
def test_token_ids_are_a_400_naming_the_alternative(http: httpx.Client, model: str, ids: list[object]) -> None:
    response = http.post("/v1/embeddings", json={"model": model, "input": ids})
    assert response.status_code == 400
    body = response.json()
    assert_openai_error(body, param="input")
    validate("ErrorResponse", body)
    assert "send the input as text" in body["error"]["message"].lower()
    assert "check_embedding_ctx_length=False" in body["error"]["message"]


def test_langchain_with_the_named_setting(gateway: GatewayProcess) -> None:
    embeddings = OpenAIEmbeddings(
        model="local/minilm", base_url=gateway.url + "/v1", api_key="test-key", check_embedding_ctx_length=False
    )  # type: ignore[call-arg]
    vectors = embeddings.embed_documents(["a first text", "a second text"])
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert len(embeddings.embed_query("a query")) == 384


def test_langchain_defaults_need_tiktoken_data_this_machine_cannot_download(gateway: GatewayProcess) -> None:
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small", base_url=gateway.url + "/v1", api_key="test-key", max_retries=0
    )  # type: ignore[call-arg]
    with pytest.raises(Exception) as caught:  # whatever tiktoken's download raises offline
        embeddings.embed_documents(["a text"])
    assert "openaipublic" in repr(caught.value) or "tiktoken" in repr(caught.value).lower()
