"""The remembered values of long-running processes: forgotten after their time, or at once by clear()."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trueup.expiring import Expiring


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [50.0]
    monkeypatch.setattr("trueup.expiring.time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def test_a_value_lives_its_seconds_and_no_longer(clock: list[float]) -> None:
    remembered: Expiring[str, int] = Expiring(2.0)
    remembered.put("a", 1, remembered.generation())
    clock[0] += 1.999
    assert remembered.get("a") == 1
    clock[0] += 0.001
    assert remembered.get("a") is None


def test_a_value_looked_up_before_a_clear_is_not_stored_after_it(clock: list[float]) -> None:
    remembered: Expiring[str, int] = Expiring(2.0)
    before = remembered.generation()
    remembered.clear()  # a revoke, between the lookup and the store
    remembered.put("a", 1, before)
    assert remembered.get("a") is None
    remembered.put("a", 2, remembered.generation())
    assert remembered.get("a") == 2


def test_fetch_makes_once_and_never_remembers_none(clock: list[float]) -> None:
    remembered: Expiring[str, int] = Expiring(2.0)
    made: list[str] = []
    assert remembered.fetch("a", lambda: made.append("a") or 7) == 7
    assert remembered.fetch("a", lambda: made.append("a") or 8) == 7
    assert remembered.fetch("b", lambda: made.append("b") or None) is None
    assert remembered.fetch("b", lambda: made.append("b") or None) is None
    assert made == ["a", "b", "b"]
