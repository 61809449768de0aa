"""When most of a rule's items drift, guess the config mistake, and test the guess in one query.

More than half of the items drifting is rarely bad data: the rule is usually wrong. The likeliest
mistakes are a source whose key columns are listed in the wrong order, a source with the wrong
sign, and a source missing its `where`. The first two are tested, not assumed: one set-based query
folds, per key (cast to text, so a swapped key compares whatever its columns' types), the recorded
figure R, each source's signed sum S_i and, for a source with a composite key, the sum W it would
give with two of its key columns swapped; then it counts, per variant, the items that would agree:

    as configured                      E = R           (E = Σ S_i)
    source i with the other sign       E - 2·S_i = R
    source i with columns a, b swapped E - S_i + W = R

Example: `storefront` keyed [storefront_id, product_id], with a source listing
[product_id, storefront_id]: 173 of 180 items drift; with that source's two columns swapped, 176
would agree, so the warning names that source and the key order that fits.

When no variant makes most items agree, the direction of the drift is the clue: if nearly all
drifted items are above (below) their recorded figure, a source counts records it should not (a
missing `where`, e.g. cancelled or pending ones) or one is missing.
"""

from __future__ import annotations

import functools
import itertools
import operator
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.config import Rule, Source
from trueup.db import dialect_for
from trueup.reconcile.drift import Finding
from trueup.reconcile.query import EVERYTHING, key_names, recorded_branch, source_branch

MIN_ITEMS = 10  # below this, half the items drifting says little about the rule
ONE_WAY = 0.9  # share of drifted items on one side of their recorded figure that points to a `where`


class _Variant(NamedTuple):
    """Source `source` with the other sign (`key` None), or with its key columns in the order `key`."""

    source: int
    key: tuple[str, ...] | None = None

    def change(self, rule: Rule) -> str:
        """What to write in the config, as the user would."""
        return f"key = {list(self.key)}" if self.key else f"sign = {-rule.expected[self.source].sign}"


def mostly_drifted(drifted: int, items: int) -> bool:
    return items >= MIN_ITEMS and drifted * 2 > items


def mostly_drifted_finding(connection: Connection, rule: Rule) -> Finding | None:
    """The `mostly_drifted` warning for `rule`, naming the likeliest config mistake; None if most items agree."""
    variants = _variants(rule)
    figures = connection.execute(_agreement(connection, rule, variants)).one()
    items, drifted, above, *agree = (int(value or 0) for value in figures)
    if not mostly_drifted(drifted, items):
        return None
    message = f"{drifted} of {items} items drifted, more than half: usually a config mistake; "
    message += _guess(rule, variants, agree, items, drifted, above)
    return Finding("mostly_drifted", "warning", drifted, (), message)


def _variants(rule: Rule) -> list[_Variant]:
    found = []
    for index, source in enumerate(rule.expected):
        found.append(_Variant(index))
        for a, b in itertools.combinations(range(len(source.key)), 2):
            key = list(source.key)
            key[a], key[b] = key[b], key[a]
            found.append(_Variant(index, tuple(key)))
    return found


def _guess(rule: Rule, variants: list[_Variant], agree: list[int], items: int, drifted: int, above: int) -> str:
    best = max(range(len(variants)), key=lambda i: agree[i], default=None)
    if best is not None and agree[best] * 2 > items and agree[best] > items - drifted:
        variant = variants[best]
        what = "key columns look out of order" if variant.key else "sign looks reversed"
        return (
            f"expected[{variant.source}] ({_name(rule.expected[variant.source])}): its {what}; "
            f"with {variant.change(rule)}, {agree[best]} of {items} items would agree"
        )
    if above >= ONE_WAY * drifted:
        return (
            f"expected is above the recorded figure on {above} of them: a source that adds may count records "
            "it should not (a missing `where`, e.g. on a status), or one that takes away is missing"
        )
    if drifted - above >= ONE_WAY * drifted:
        return (
            f"expected is below the recorded figure on {drifted - above} of them: a source that takes away may "
            "count records it should not (a missing `where`, e.g. on a status), or one that adds is missing"
        )
    return "no other sign or key order makes them agree; check each source's `key`, `quantity` and `where`"


def _name(source: Source) -> str:
    return source.table or "from " + " ".join((source.from_ or "").split())[:40]


def _agreement(connection: Connection, rule: Rule, variants: list[_Variant]) -> sa.Select:
    """items, drifted, drifted above recorded, then per variant the items that would agree."""
    prep, dialect = connection.dialect.identifier_preparer, dialect_for(connection)
    sources = [f"s{i}" for i in range(len(rule.expected))]
    swaps = {n: f"v{n}" for n, variant in enumerate(variants) if variant.key}
    terms = ["rec", "rec_rows", *sources, *swaps.values()]

    def branch(select: sa.Select, figures: dict[str, str | sa.ColumnElement[Any]]) -> sa.Select:
        """`select`'s keys as text, and each term: a column of `select` named in `figures`, or 0."""
        inner = select.subquery()
        keys = [sa.cast(inner.c[name], sa.String).label(name) for name in key_names(rule)]
        chosen = {t: inner.c[f] if isinstance(f, str) else f for t, f in figures.items()}
        return sa.select(*keys, *[chosen.get(t, _ZERO).label(t) for t in terms])

    branches = [branch(recorded_branch(rule, prep, dialect, EVERYTHING), {"rec": "recorded", "rec_rows": _ONE})]
    for index, source in enumerate(rule.expected):
        branches.append(branch(source_branch(rule, source, prep, dialect, EVERYTHING), {sources[index]: "expected"}))
    for number, term in swaps.items():
        variant = variants[number]
        swapped = rule.expected[variant.source].model_copy(update={"key": list(variant.key or ())})
        branches.append(branch(source_branch(rule, swapped, prep, dialect, EVERYTHING), {term: "expected"}))
    union = sa.union_all(*branches).subquery("u")
    per_key = (
        sa.select(*[sa.func.coalesce(sa.func.sum(union.c[t]), 0).label(t) for t in terms])
        .group_by(*[union.c[name] for name in key_names(rule)])
        .subquery("per_key")
    )
    c = per_key.c
    expected = functools.reduce(operator.add, [c[name] for name in sources])
    alternatives = [
        expected - c[sources[v.source]] + (c[swaps[n]] if v.key else -c[sources[v.source]])
        for n, v in enumerate(variants)
    ]
    return sa.select(
        sa.func.count(),
        _count_where(expected != c.rec),
        _count_where(expected > c.rec),
        *[_count_where(alternative == c.rec) for alternative in alternatives],
    ).where(c.rec_rows == 1)


def _count_where(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


_ZERO = sa.literal_column("0")
_ONE = sa.literal_column("1")
