"""A small thread-safe map whose entries are forgotten a fixed time after they were stored.

Long-running processes (the service, `watch`) keep what is expensive to learn and rarely changes
(a verified token, a rule resolved against the schema) for a few seconds instead of asking the
database on every request. `clear()` forgets everything at once; a value looked up *before* a
`clear()` and stored after it would bring back what was just forgotten, so `put` takes the
`generation()` read before the lookup and stores nothing if a `clear()` came in between:

    remembered = Expiring(1.0)
    generation = remembered.generation()
    token = look_it_up()                        # a revoke may run meanwhile ...
    remembered.put(digest, token, generation)   # ... and then this stores nothing

`fetch(key, make)` is that sequence; `PerEngine` keeps one map per SQLAlchemy engine (what is
true of one database is not of another), forgotten with the engine.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.engine import Engine

K = TypeVar("K")
V = TypeVar("V")


class Expiring(Generic[K, V]):
    def __init__(self, seconds: float):
        self.seconds = seconds
        self._entries: dict[K, tuple[float, V]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value stored under `key` less than `seconds` ago, else None."""
        with self._lock:
            stored = self._entries.get(key)
        if stored is None or time.monotonic() - stored[0] >= self.seconds:
            return None
        return stored[1]

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def put(self, key: K, value: V, generation: int) -> None:
        """Store `value` unless `clear()` ran since `generation` was read."""
        with self._lock:
            if generation == self._generation:
                self._entries[key] = (time.monotonic(), value)

    def fetch(self, key: K, make: Callable[[], V | None]) -> V | None:
        """The value remembered under `key`, else `make()`, remembered unless it is None."""
        generation = self.generation()
        found = self.get(key)
        if found is None:
            found = make()
            if found is not None:
                self.put(key, found, generation)
        return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1


class PerEngine(Generic[K, V]):
    """An `Expiring` map per engine."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._maps: weakref.WeakKeyDictionary[Engine, Expiring[K, V]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def fetch(self, engine: Engine, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            remembered = self._maps.setdefault(engine, Expiring(self.seconds))
        found = remembered.fetch(key, make)
        assert found is not None, "PerEngine remembers values, never None"
        return found
