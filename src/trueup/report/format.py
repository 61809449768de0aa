"""Value formatting shared by the renderers: exact JSON, and numbers and keys for people."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any


def to_json(value: Any) -> str:
    """JSON text for plain data; Decimals are written as exact numbers, never through float."""
    encode = _ENCODERS.get(type(value))  # the exact type first: this runs for every value streamed
    return encode(value) if encode is not None else _to_json_by_kind(value)


def _to_json_by_kind(value: Any) -> str:
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return _object(value)
    if isinstance(value, (list, tuple)):
        return _array(value)
    if isinstance(value, (datetime, date, time)):
        return json.dumps(value.isoformat())
    if isinstance(value, (uuid.UUID, bytes)):
        return json.dumps(value.hex() if isinstance(value, bytes) else str(value))
    return json.dumps(str(value), ensure_ascii=False)


def _object(value: dict[Any, Any]) -> str:
    return "{" + ", ".join([f"{_key_text(k)}: {to_json(v)}" for k, v in value.items()]) + "}"


def _key_text(key: Any) -> str:
    """An object key as json.dumps writes it (ASCII-escaped); documents repeat a few field names."""
    text = _KEY_TEXTS.get(key) if type(key) is str else None
    if text is None:
        text = json.dumps(str(key))
        if type(key) is str and len(_KEY_TEXTS) < 256:
            _KEY_TEXTS[key] = text
    return text


_KEY_TEXTS: dict[str, str] = {}


def _array(value: list[Any] | tuple[Any, ...]) -> str:
    return "[" + ", ".join([to_json(v) for v in value]) + "]"


def _decimal_text(value: Decimal) -> str:
    text = str(value)
    if text.lstrip("-").isdigit() and text != "-0":  # a whole number as written: the common case, kept fast
        return text
    if not value.is_finite():
        return json.dumps(text)
    text = format(value, "f")  # every digit, no exponent (normalize() would round to the context's precision)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


_encode_text = json.JSONEncoder(ensure_ascii=False).encode
_ENCODERS: dict[type, Any] = {
    str: _encode_text,
    int: int.__repr__,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
    list: _array,
    tuple: _array,
    dict: _object,
    uuid.UUID: lambda value: f'"{value}"',
    Decimal: _decimal_text,
}


def number(value: Decimal | int | None, *, signed: bool = False) -> str:
    """1234.50 -> '1,234.5'; None -> '—'."""
    if value is None:
        return "—"
    value = Decimal(value)
    text = f"{value.normalize():,f}" if value != value.to_integral_value() else f"{int(value):,}"
    return f"+{text}" if signed and value > 0 else text


CELL_LIMIT = 120  # characters of one value shown in a table, Markdown or HTML cell (JSON keeps all)


def short(text: str, limit: int = CELL_LIMIT) -> str:
    """`text` cut to `limit` characters with an ellipsis: one 1 MB SKU must not take a minute to lay out."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell(value: Any) -> str:
    """One value (a key part, a group) for people: NULL for None, long text shortened."""
    return "NULL" if value is None else short(str(value))


def key_text(key: tuple[Any, ...] | list[Any]) -> str:
    return ", ".join(cell(part) for part in key)
