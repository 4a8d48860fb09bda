"""The journal on its own: append, read back, rotation, checkpoints, ownership locks, torn lines."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from bastion.ledger.journal import (
    CHECKPOINT_SUFFIX,
    SEGMENT_SUFFIX,
    TMP_SUFFIX,
    Journal,
    claim_orphans,
    read_checkpoint,
)


def line(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"id": f"req_{i}", "pad": "x" * pad}, option=orjson.OPT_APPEND_NEWLINE)


def segment_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX))


def test_append_then_read_back_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    spans = [journal.append(line(i)) for i in range(100)]
    segment = journal.current
    assert all(s is segment for s, _, _ in spans)
    # Spans are contiguous: each record starts where the previous one ended.
    assert [start for _, start, _ in spans[1:]] == [end for _, _, end in spans[:-1]]
    assert segment.size == os.path.getsize(segment.path) == spans[-1][2]
    records, offset, bad = segment.read(0)
    assert [r["id"] for r in records] == [f"req_{i}" for i in range(100)]
    assert (offset, bad) == (segment.size, 0)
    # Reading from a record's start offset resumes exactly there; max_records stops early.
    records, offset, _ = segment.read(spans[40][1], None, max_records=5)
    assert [r["id"] for r in records] == [f"req_{i}" for i in range(40, 45)]
    assert offset == spans[44][2]
    journal.close()


def test_fsync_mode_appends_and_rotates(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_segment_bytes=4096, fsync=True)
    journal.open()
    for i in range(30):
        journal.append(line(i, pad=300))
    assert len(journal.segments) > 1
    assert [r["id"] for s in journal.segments for r in s.read(0)[0]] == [f"req_{i}" for i in range(30)]
    journal.close()


def test_files_are_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(line(1))
    assert os.stat(journal.current.path).st_mode & 0o777 == 0o600
    journal.close()


def test_segments_rotate_at_the_size_limit(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_segment_bytes=4096)
    journal.open()
    for i in range(100):
        journal.append(line(i, pad=200))
    assert len(journal.segments) > 4
    assert all(s.sealed for s in journal.segments[:-1]) and not journal.current.sealed
    assert all(s.size >= 4096 for s in journal.segments[:-1])
    ids = [r["id"] for s in journal.segments for r in s.read(0)[0]]
    assert ids == [f"req_{i}" for i in range(100)]
    assert len(segment_files(tmp_path)) == len(journal.segments)
    journal.close()


def test_close_deletes_committed_segments_and_keeps_the_rest(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_segment_bytes=4096)
    journal.open()
    for i in range(60):
        journal.append(line(i, pad=200))
    first, second = journal.segments[0], journal.segments[1]
    first.checkpoint(first.size)
    second.checkpoint(100)
    journal.close()
    left = segment_files(tmp_path)
    assert first.path.name not in left and second.path.name in left
    assert read_checkpoint(second.checkpoint_path) == 100


def test_a_live_journal_is_never_claimed(tmp_path: Path) -> None:
    live = Journal(tmp_path)
    live.open()
    live.append(line(1))
    assert list(claim_orphans(tmp_path)) == []
    live.close()


def test_orphans_are_claimed_from_their_checkpoint_once(tmp_path: Path) -> None:
    dead = Journal(tmp_path)
    dead.open()
    spans = [dead.append(line(i)) for i in range(10)]
    dead.current.checkpoint(spans[3][2])
    # A process that dies just drops its descriptors: close them without deleting anything.
    for segment in dead.segments:
        segment.close()
    orphans = list(claim_orphans(tmp_path))
    assert len(orphans) == 1
    orphan = orphans[0]
    assert orphan.start == spans[3][2]
    records, _, _ = orphan.segment.read(orphan.start)
    assert [r["id"] for r in records] == [f"req_{i}" for i in range(4, 10)]
    # While this process holds the claim, nobody else can claim the same segment.
    assert list(claim_orphans(tmp_path)) == []
    orphan.segment.delete()
    assert segment_files(tmp_path) == []
    assert not any(p.name.endswith(CHECKPOINT_SUFFIX) for p in tmp_path.iterdir())


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / f"x-1-a.000001{SEGMENT_SUFFIX}"
    path.write_bytes(line(1) + line(2) + b'{"id": "req_3", "pa')
    (orphan,) = claim_orphans(tmp_path)
    records, offset, bad = orphan.segment.read(0)
    assert [r["id"] for r in records] == ["req_1", "req_2"]
    assert offset == len(line(1) + line(2)) and bad == 0
    orphan.segment.close()


def test_a_corrupt_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / f"x-1-a.000001{SEGMENT_SUFFIX}"
    path.write_bytes(line(1) + b"not json at all\n" + line(2))
    (orphan,) = claim_orphans(tmp_path)
    records, offset, bad = orphan.segment.read(0)
    assert [r["id"] for r in records] == ["req_1", "req_2"]
    assert bad == 1 and offset == path.stat().st_size
    orphan.segment.close()


def test_lines_longer_than_a_read_chunk(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(line(1))
    journal.append(line(2, pad=3 * 1024 * 1024))
    journal.append(line(3))
    records, offset, bad = journal.current.read(0)
    assert [r["id"] for r in records] == ["req_1", "req_2", "req_3"]
    assert len(records[1]["pad"]) == 3 * 1024 * 1024 and bad == 0 and offset == journal.current.size
    journal.close()


def test_stale_tmp_files_and_stray_checkpoints_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / f"x-1-a.000001{SEGMENT_SUFFIX}{TMP_SUFFIX}"
    stale.write_bytes(b"")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / f"x-2-b.000001{SEGMENT_SUFFIX}{TMP_SUFFIX}"
    fresh.write_bytes(b"")  # may be a live process creating a segment right now
    stray = tmp_path / f"x-3-c.000001{SEGMENT_SUFFIX}{CHECKPOINT_SUFFIX}"
    stray.write_bytes(b"00000000000000000010\n")
    assert list(claim_orphans(tmp_path)) == []
    assert not stale.exists() and fresh.exists() and not stray.exists()


def test_unreadable_checkpoint_means_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / f"x-1-a.000001{SEGMENT_SUFFIX}"
    path.write_bytes(line(1))
    (tmp_path / (path.name + CHECKPOINT_SUFFIX)).write_bytes(b"garbage")
    (orphan,) = claim_orphans(tmp_path)
    assert orphan.start == 0
    orphan.segment.close()


def test_checkpoint_beyond_the_end_is_clamped(tmp_path: Path) -> None:
    path = tmp_path / f"x-1-a.000001{SEGMENT_SUFFIX}"
    path.write_bytes(line(1))
    (tmp_path / (path.name + CHECKPOINT_SUFFIX)).write_bytes(b"99999999\n")
    (orphan,) = claim_orphans(tmp_path)
    assert orphan.start == path.stat().st_size
    orphan.segment.close()


def test_a_failed_write_seals_the_segment_and_the_next_append_starts_a_new_one(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(line(1))
    first = journal.current
    os.close(first.fd)  # make the next write fail
    with pytest.raises(OSError):
        journal.append(line(2))
    first.fd = -1
    assert first.sealed
    segment, start, _ = journal.append(line(3))
    assert segment is not first and start == 0
    assert [r["id"] for r in segment.read(0)[0]] == ["req_3"]
    journal.close()
