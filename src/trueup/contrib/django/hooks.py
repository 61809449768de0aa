"""`keep_true()`: after each commit that saves or deletes an instance of a model, sync the keys it touched.

It wraps the pattern the README's hooks show, `post_save` + `transaction.on_commit` + `trueup.sync`,
and adds what that pattern misses:

* the key an instance had *before* the save is synced too: a line item moved from a request of
  storefront 1 to one of storefront 2 changes both (1, product) and (2, product). The old key is
  read in `pre_save` from the row as the database holds it (one query per save of an existing
  row, plus any the `key` function makes);
* deletes (`pre_delete` reads the key while related rows still exist, `post_delete` schedules);
* nothing happens before the commit, and nothing at all if the transaction rolls back
  (`on_commit` callbacks of a rolled-back transaction or savepoint are dropped);
* a failing sync is logged, never raised into the request that committed;
* a sync that found a round of the rule running reports it: the keys are covered by that round
  before it lets go of the lock (status `queued`).

Each sync sends the `synced` signal (sender: the model; `rule`, `keys`, `result`: the
`RoundResult` or None when it failed; `error`: the exception or None).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Model, signals
from django.dispatch import Signal

from trueup.contrib.django.database import config_path, database_url

log = logging.getLogger(__name__)

synced = Signal()
WAITING = ("queued",)  # the status of a sync that left its keys to the running round

Key = tuple[Any, ...]
KeyFunction = Callable[[Any], Any]


def keep_true(
    sender: type[Model],
    rule: str,
    key: KeyFunction,
    *,
    using: str | None = None,
    config: str | Path | None = None,
    apply: bool = True,
    triggered_by: str | None = None,
    **options: Any,
) -> KeepTrue:
    """Sync `rule` for the key(s) of every saved or deleted `sender` instance, once its transaction commits.

    `key(instance)` returns one key (a tuple in recorded-key order, or a single value) or a list of
    keys. `using` is the database alias to sync (default: the one the instance was written to);
    `config` the trueup.toml (default `settings.TRUEUP_CONFIG`); more keyword options go to
    `trueup.sync` (`wait`, `yes`, `limits`, ...). Returns the connected hook (`.disconnect()`).
    """
    hook = KeepTrue(sender, rule, key, using, config, apply, triggered_by or f"django:{sender._meta.label}", options)
    hook.connect()
    return hook


class KeepTrue:
    """The signal receivers of one `keep_true()` call."""

    def __init__(
        self,
        sender: type[Model],
        rule: str,
        key: KeyFunction,
        using: str | None,
        config: str | Path | None,
        apply: bool,
        triggered_by: str,
        options: dict[str, Any],
    ):
        self.sender, self.rule, self.key, self.using = sender, rule, key, using
        self.config, self.apply, self.triggered_by, self.options = config, apply, triggered_by, options
        self._slot = f"_trueup_keys_{id(self)}"  # where an instance carries its keys from pre_ to post_

    def _receivers(self) -> list[tuple[Signal, Callable[..., None]]]:
        return [
            (signals.pre_save, self._before_save),
            (signals.post_save, self._after),
            (signals.pre_delete, self._before_delete),
            (signals.post_delete, self._after),
        ]

    def connect(self) -> None:
        for signal, receiver in self._receivers():
            signal.connect(receiver, sender=self.sender, weak=False, dispatch_uid=(self._slot, signal))

    def disconnect(self) -> None:
        for signal, receiver in self._receivers():
            signal.disconnect(receiver, sender=self.sender, dispatch_uid=(self._slot, signal))

    def _before_save(self, sender: type[Model], instance: Model, raw: bool = False, using: str = "", **_: Any) -> None:
        if raw or instance._state.adding:
            return
        stored = sender._base_manager.using(using).filter(pk=instance.pk).first()
        setattr(instance, self._slot, self.keys_of(stored) if stored is not None else [])

    def _before_delete(self, sender: type[Model], instance: Model, using: str = "", **_: Any) -> None:
        setattr(instance, self._slot, self.keys_of(instance))

    def _after(self, sender: type[Model], instance: Model, raw: bool = False, using: str = "", **kwargs: Any) -> None:
        if raw:
            return
        keys = instance.__dict__.pop(self._slot, [])
        if "created" in kwargs:  # a save: the keys it has now, besides those it had
            keys = list(dict.fromkeys([*keys, *self.keys_of(instance)]))
        if keys:
            transaction.on_commit(partial(self.sync, keys, self.using or using), using=using)

    def keys_of(self, instance: Model) -> list[Key]:
        """The keys `instance` stands for (None in a key: the instance belongs to no key)."""
        found = self.key(instance)
        listed: Iterable[Any] = found if isinstance(found, list | set | frozenset) else [found]
        keys = [tuple(k) if isinstance(k, tuple | list) else (k,) for k in listed]
        return [k for k in keys if None not in k]

    def sync(self, keys: list[Key], alias: str) -> Any:
        """Sync `keys` now (what runs after the commit); the RoundResult, or None when it failed (logged)."""
        import trueup

        result, error = None, None
        try:
            result = trueup.sync(
                self.config or config_path(),
                rule=self.rule,
                keys=keys,
                apply=self.apply,
                triggered_by=self.triggered_by,
                database=database_url(alias),
                **self.options,
            )
        except Exception as failure:  # a hook must never break the request that committed
            error = failure
            log.exception("trueup: sync of rule %r for key(s) %s failed", self.rule, keys)
        else:
            self._log(result, keys)
        synced.send(self.sender, rule=self.rule, keys=keys, result=result, error=error)
        return result

    def _log(self, result: Any, keys: list[Key]) -> None:
        if result.status in WAITING:
            log.info(
                "trueup: rule %r key(s) %s %s: a round of the rule is running and covers them (or the next does)",
                self.rule,
                keys,
                result.status,
            )
        elif result.unresolved:
            log.warning("trueup: rule %r key(s) %s: %s, %d drifted", self.rule, keys, result.status, result.drifted)
        else:
            log.debug("trueup: rule %r key(s) %s: %s", self.rule, keys, result.status)
