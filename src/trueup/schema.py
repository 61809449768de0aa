"""The shapes of the JSON documents, as pydantic types: what the service's OpenAPI document publishes.

Each document is built in one place and its shape is said in one place, beside
its builder, in one of two ways:

- a builder that writes a dict literal returns a `Document` (a `TypedDict`),
  so the type is the shape: `def drift_dict(drift) -> DriftEntry`;
- a builder that dumps a record (`run._asdict()`) gets its shape derived from
  the record's own annotations: `record(Run, changed=int, by=str)` is a model
  with Run's fields plus the two the builder adds.

Both forbid keys they do not name, so the schema test (a happy call of every
endpoint, validated against the schema) fails if a builder and its shape part.
Decimals are written as exact JSON numbers by `to_json`, so `Exact` says
number; times as ISO 8601 without an offset (`Timestamp`); tuples as arrays.

    record(Sighting).model_json_schema()["properties"]["delta"]
    -> {"anyOf": [{"type": "number"}, {"type": "null"}], ...}
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, WithJsonSchema, create_model
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

Exact = Annotated[Decimal, WithJsonSchema({"type": "number", "description": "Exact: every digit, never a float."})]
# Times are stored and written in UTC without an offset (`datetime.isoformat()` of a naive UTC time), which is
# ISO 8601 but not the RFC 3339 `date-time` format: the pattern says what is written.
Timestamp = Annotated[
    datetime,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$",
            "description": "ISO 8601, UTC when no offset is given: 2026-12-02T18:30:00.123456.",
        }
    ),
]
KeyValues = Annotated[list[Any], WithJsonSchema({"type": "array", "description": "Values in recorded-key order."})]
CLOSED = ConfigDict(extra="forbid", defer_build=True)  # the schema is built when first asked for, not at import


class Document(TypedDict, total=True):
    """The base of every document a builder writes as a dict literal (no keys beyond those named)."""

    __pydantic_config__ = CLOSED  # type: ignore[misc]


def record(cls: type[tuple[Any, ...]], name: str | None = None, **more: Any) -> type[BaseModel]:
    """A closed model of the dict `cls(...)._asdict()` gives, plus (or overriding) the fields in `more`."""
    return _record(cls, name or cls.__name__, tuple(more.items()))


@cache
def _record(cls: type[tuple[Any, ...]], name: str, more: tuple[tuple[str, Any], ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {field: (json_type(hint), ...) for field, hint in get_type_hints(cls).items()}
    fields.update({field: (hint, ...) for field, hint in more})
    return create_model(name, __config__=CLOSED, __doc__=cls.__doc__, **fields)


def json_type(hint: Any) -> Any:
    """The type of `hint`'s value as `to_json` writes it: Decimal an exact number, tuples arrays, records objects."""
    if hint is Decimal:
        return Exact
    if hint is datetime:
        return Timestamp
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return record(hint)
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return typing.Union[tuple(json_type(a) for a in args)]  # noqa: UP007 (built from a tuple)
    if origin is tuple:
        return KeyValues if args in ((Any, ...), ()) else list[json_type(args[0])]  # type: ignore[misc]
    if origin in (Mapping, dict) or hint is Mapping:
        return dict[str, json_type(args[1])] if args else dict[str, Any]  # type: ignore[misc]
    return hint


def without(model: type[BaseModel], name: str, *dropped: str) -> type[BaseModel]:
    """A closed copy of `model` without the fields in `dropped` (what `model_dump(exclude=...)` gives)."""
    fields = {f: (json_type(info.annotation), info) for f, info in model.model_fields.items() if f not in dropped}
    return create_model(name, __config__=CLOSED, __doc__=model.__doc__, **fields)  # type: ignore[call-overload]
