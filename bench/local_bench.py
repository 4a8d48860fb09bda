"""Measure the embedded models on this machine (not collected by pytest).

    .venv/bin/python -m bench.local_bench

Prints model load times, generation speed and time to first token, embeddings per second and the
tokenizer's cost per KB. The machine's load average is printed too: other processes on the same
cores change every figure here.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

from bastion.local import minilm_model_dir, smollm2_gguf_path
from bastion.local.chat_engine import ChatEngine, GenerationRequest, GenerationResult
from bastion.local.embedder import Embedder
from bastion.usage import tokenizer


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def bench_chat() -> None:
    engine = ChatEngine(smollm2_gguf_path(), n_ctx=2048)
    started = time.perf_counter()
    await engine.warm()
    print(f"chat model load: {time.perf_counter() - started:.3f} s (engine.load {engine.load_seconds:.3f} s)")

    decode_rates, first_tokens, first_chunks = [], [], []
    for run in range(5):
        # A different prompt each run, so llama.cpp's prefix cache does not hide prompt evaluation.
        prompt = [{"role": "user", "content": f"Story {run}: write a long tale about a dragon named Ember{run}."}]
        request = GenerationRequest(prompt, max_tokens=128, seed=run)
        sent = time.perf_counter()
        first_chunk = None
        result: GenerationResult | None = None
        async for item in engine.stream(request):
            if isinstance(item, str):
                first_chunk = first_chunk or time.perf_counter() - sent
            elif isinstance(item, GenerationResult):
                result = item
        assert result is not None and result.time_to_first_token_s is not None
        decode_s = result.generation_s - result.time_to_first_token_s
        decode_rates.append((result.completion_tokens - 1) / decode_s)
        first_tokens.append(result.time_to_first_token_s)
        first_chunks.append(first_chunk or 0.0)
    print(
        f"generation: {statistics.median(decode_rates):.1f} tokens/s median over 5 x 128 tokens "
        f"(min {min(decode_rates):.1f}, max {max(decode_rates):.1f})"
    )
    print(
        f"time to first token, ~40-token prompt: {statistics.median(first_tokens) * 1000:.0f} ms in the worker, "
        f"{statistics.median(first_chunks) * 1000:.0f} ms to the consumer (medians)"
    )
    long_prompt = " ".join(f"Fact {i}: the sky is blue." for i in range(60))
    result = await engine.complete(GenerationRequest([{"role": "user", "content": long_prompt}], max_tokens=4))
    assert result.time_to_first_token_s is not None
    print(f"time to first token, {result.prompt_tokens}-token prompt: {result.time_to_first_token_s * 1000:.0f} ms")
    engine.close()


async def bench_embeddings() -> None:
    embedder = Embedder(minilm_model_dir())
    started = time.perf_counter()
    await embedder.warm()
    print(f"embedding model load (torch import included): {time.perf_counter() - started:.2f} s")
    sentences = [f"Short sentence number {i} about cats, dogs and the weather." for i in range(256)]
    await embedder.embed(sentences[:8])
    started = time.perf_counter()
    await embedder.embed(sentences)
    print(f"embeddings, one request of 256: {256 / (time.perf_counter() - started):.0f} /s")
    started = time.perf_counter()
    await asyncio.gather(*(embedder.embed([s]) for s in sentences))
    print(f"embeddings, 256 concurrent single-sentence requests: {256 / (time.perf_counter() - started):.0f} /s")
    started = time.perf_counter()
    for sentence in sentences[:32]:
        await embedder.embed([sentence])
    print(f"embeddings, sequential single-sentence requests: {32 / (time.perf_counter() - started):.0f} /s")


def bench_tokenizer() -> None:
    started = time.perf_counter()
    print(f"tokenizer: {tokenizer.tokenizer_name()}, loaded in {time.perf_counter() - started:.3f} s")
    backend = tokenizer._get_backend()
    spec = Path(__file__).resolve().parents[2] / "docs"
    prose = " ".join(p.read_text() for p in sorted(spec.glob("*.md")))[:65536] or "The quick brown fox. " * 3000
    code = Path(tokenizer.__file__).read_text()
    samples = {"prose": prose.encode()[:1024].decode(errors="ignore"), "python": code[:1024]}
    for name, text in samples.items():
        rounds = 2000
        started = time.perf_counter()
        for _ in range(rounds):
            backend.count(text)
        per_kb = (time.perf_counter() - started) / rounds * 1e6 * 1024 / len(text.encode())
        print(f"tokenizer, {name}: {per_kb:.0f} us per KB uncached ({backend.count(text)} tokens per KB)")
    started = time.perf_counter()
    for _ in range(20000):
        tokenizer.count_text(samples["prose"])
    print(f"tokenizer, repeated 1 KB text (cache hit): {(time.perf_counter() - started) / 20000 * 1e6:.2f} us")


async def main() -> None:
    print(f"cpus: {os.cpu_count()}, load average before: {_load_average()}")
    bench_tokenizer()
    await bench_chat()
    await bench_embeddings()
    print(f"load average after: {_load_average()}")


if __name__ == "__main__":
    asyncio.run(main())
