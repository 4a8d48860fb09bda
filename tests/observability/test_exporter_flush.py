"""``flush`` exports what is queued whether or not the exporter's thread runs: a test or a shutdown
that flushes an exporter never started, or already stopped, must not wait for ever."""

from __future__ import annotations

import threading

from tests.observability.support import STARTED_AT, in_memory, run_trace


def _flush_returns(flush: object) -> bool:
    """Run ``flush`` on a thread of its own; whether it returned (a hang would fail, not stall, the test)."""
    assert callable(flush)
    thread = threading.Thread(target=flush, daemon=True)
    thread.start()
    thread.join(timeout=30)
    return not thread.is_alive()


def test_flush_without_the_thread_exports_what_is_queued() -> None:
    captured = in_memory()
    captured.exporter.record_agent_run(run_trace(), run_id="run_1", plan="writer", started_at=STARTED_AT)
    assert _flush_returns(captured.exporter.flush)
    names = {span.name for span in captured.spans.get_finished_spans()}
    assert "invoke_agent writer" in names


async def test_flush_after_stop_exports_what_came_after() -> None:
    captured = in_memory()
    await captured.exporter.start()
    captured.exporter.record_agent_run(run_trace(), run_id="run_1", plan="writer", started_at=STARTED_AT)
    captured.exporter.flush()  # the thread runs: it exported the run
    assert len([s for s in captured.spans.get_finished_spans() if s.name == "invoke_agent writer"]) == 1
    await captured.exporter.stop()
    captured.exporter.record_agent_run(run_trace(), run_id="run_2", plan="writer", started_at=STARTED_AT)
    assert _flush_returns(captured.exporter.flush)
    runs = [s for s in captured.spans.get_finished_spans() if s.name == "invoke_agent writer"]
    assert len(runs) == 1  # stop() shut the tracer provider down: later spans are dropped, not hung on
