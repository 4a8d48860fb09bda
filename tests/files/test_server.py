"""/v1/files on a real ``bastion serve`` with the unmodified (synchronous) OpenAI SDK over TCP:
upload, list, retrieve, content, delete, and the 400 / 404 / 413 answers, the 413 coming while
the body streams (declared too large, or found too large on the way), with nothing left on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.files.support import batch_jsonl, jsonl
from tests.support.gateway import GatewayProcess, write_config
from tests.support.openai_spec import validate

pytestmark = pytest.mark.integration

LIMIT = 1_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Path]]:
    workdir = tmp_path_factory.mktemp("files-server")
    files_dir = workdir / "uploads"
    config = {
        "server": {"host": "127.0.0.1", "graceful_shutdown_s": 2},
        "models": [],
        "local": {"enabled": False, "embeddings_enabled": False},
        "auth": {"enabled": False},
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "files": {"directory": str(files_dir), "max_bytes": LIMIT},
        "data_dir": str(workdir / "data"),
    }
    with GatewayProcess(write_config(workdir / "bastion.yaml", config), workdir / "gateway.log") as process:
        yield process, files_dir


@pytest.fixture
def client(server: tuple[GatewayProcess, Path]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server[0].url + "/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def _stored(files_dir: Path) -> list[Path]:
    return [path for path in files_dir.rglob("*") if path.is_file()]


def test_the_files_api_over_tcp(server: tuple[GatewayProcess, Path], client: openai.OpenAI) -> None:
    _, files_dir = server
    content = batch_jsonl(20)
    uploaded = client.files.create(file=("batch.jsonl", content), purpose="batch")
    validate("OpenAIFile", uploaded.model_dump(mode="json", exclude_unset=True))
    assert client.files.retrieve(uploaded.id).bytes == len(content)
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]
    assert client.files.content(uploaded.id).content == content
    assert (files_dir / uploaded.id[-2:] / uploaded.id).read_bytes() == content

    with pytest.raises(openai.BadRequestError) as malformed:
        client.files.create(file=("bad.jsonl", jsonl([b"{", b"[]"])), purpose="batch")
    assert "line 1: not valid JSON" in malformed.value.message and "line 2:" in malformed.value.message

    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    assert _stored(files_dir) == []


def test_too_large_is_a_413_while_the_body_streams(server: tuple[GatewayProcess, Path], client: openai.OpenAI) -> None:
    process, files_dir = server
    # Declared too large (Content-Length): refused before the body is read.
    with pytest.raises(openai.APIStatusError) as declared:
        client.files.create(file=("big.bin", b"x" * (3 * LIMIT)), purpose="user_data")
    assert declared.value.status_code == 413
    assert declared.value.response.json()["error"]["code"] == "file_too_large"

    # No length declared (chunked): refused at the byte that passes the limit.
    boundary = b"b0undary"
    head = b'--b0undary\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
    head += b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield head
        for _ in range(40):  # 2.6 MB in all, unless the server stops reading
            sent += 65536
            yield b"y" * 65536
        yield b"\r\n--b0undary--\r\n"

    answer = httpx.post(
        process.url + "/v1/files",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=" + boundary.decode()},
        timeout=30,
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["param"] == "file"
    assert _stored(files_dir) == []  # the partial upload is gone
    # Still serving.
    small = client.files.create(file=("ok.txt", b"fine"), purpose="user_data")
    assert client.files.content(small.id).content == b"fine"
    client.files.delete(small.id)
