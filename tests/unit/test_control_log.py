"""The capture's numbered change log (flowbook.capture.control.ChangeLog): replay and reset."""

from __future__ import annotations

import threading

from flowbook.capture.control import ChangeLog


def test_entries_after_a_sequence_number_are_replayed_in_order() -> None:
    log = ChangeLog(size=10)
    for i in range(5):
        log.append(added=[f"f{i}"])
    got = log.since(2, wait=0)
    assert got["reset"] is False and got["seq"] == 5 and got["instance"] == log.instance
    assert [(e["seq"], e["added"]) for e in got["changes"]] == [
        (3, ["f2"]),
        (4, ["f3"]),
        (5, ["f4"]),
    ]
    assert log.since(5, wait=0)["changes"] == []


def test_a_reader_further_behind_than_the_log_keeps_is_told_to_reset() -> None:
    log = ChangeLog(size=3)
    for i in range(6):
        log.append(updated=[f"f{i}"])
    assert log.since(3, wait=0)["reset"] is False  # 4, 5, 6 are all kept
    behind = log.since(2, wait=0)  # 3 is gone
    assert behind["reset"] is True and behind["changes"] == [] and behind["seq"] == 6
    assert log.since(99, wait=0)["reset"] is True  # another capture's numbering


def test_a_long_poll_returns_as_soon_as_something_changes() -> None:
    log = ChangeLog()
    got: dict[str, object] = {}
    reader = threading.Thread(target=lambda: got.update(log.since(0, wait=60)))
    reader.start()
    log.append(removed=["gone"])
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert got["changes"] == [{"seq": 1, "removed": ["gone"]}]


def test_the_log_keeps_a_bounded_number_of_rows() -> None:
    log = ChangeLog(size=100, max_rows=5)
    for i in range(4):
        log.append(updated=[f"f{i}", f"g{i}"], rows={f"f{i}": {}, f"g{i}": {}})
    # 8 rows were sent; keeping at most 5 leaves the last two entries (4 rows).
    assert [e["seq"] for e in log.since(2, wait=0)["changes"]] == [3, 4]
    assert log.since(1, wait=0)["reset"] is True
    log.append(updated=["big"], rows={str(i): {} for i in range(9)})
    assert [e["seq"] for e in log.since(4, wait=0)["changes"]] == [5], "the newest always stays"
