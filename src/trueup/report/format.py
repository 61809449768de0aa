"""Value formatting shared by the renderers: exact JSON, and numbers, money and keys for people.

Everything here is a pure function of plain values, so the terminal, Markdown
and HTML reports (and the service's dashboard) show a figure the same way:

    number(Decimal("1234.50"))               -> '1,234.5'
    money(Decimal("-65.1"), Money("EUR"))    -> '-65.10 EUR'
    value_text(None)                         -> 'NULL'
    literal("[a-z]")                         -> a Rich Text that prints '[a-z]' as written
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, NamedTuple

from rich.text import Text


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


NULL = "NULL"  # a database NULL (a key, a group, a sample value), the same in every report
NONE = "—"  # no figure at all


class Money(NamedTuple):
    """How money is shown: an optional currency (a code such as "EUR" or a sign such as "$") and fixed decimals.

    `decimals=None` keeps every decimal a value carries (figures already at one scale, like cost's).
    """

    currency: str | None = None
    decimals: int | None = 2


PLAIN = Money()  # no currency, two decimals


def money(value: Decimal | int | None, style: Money = PLAIN, *, signed: bool = False) -> str:
    """Exact decimal rounding (half to even) to `style.decimals`, thousands separated: never through float.

    A currency code follows the figure (`-65.10 EUR`), a sign leads it (`-$65.10`).
    """
    if value is None:
        return NONE
    amount = Decimal(value)
    if style.decimals is not None:
        amount = amount.quantize(Decimal(1).scaleb(-style.decimals), rounding=ROUND_HALF_EVEN)
    sign = "-" if amount < 0 else "+" if signed and amount > 0 else ""
    digits = f"{abs(amount):,f}"
    if not style.currency:
        return sign + digits
    if style.currency.isalpha():
        return f"{sign}{digits} {style.currency}"
    return f"{sign}{style.currency}{digits}"


def value_text(value: Any) -> str:
    """A database value for people: NULL for NULL, anything else as written."""
    return NULL if value is None else str(value)


CELL_LIMIT = 120  # characters of one value shown in a table, Markdown or HTML cell (JSON keeps all)


def short(text: str, limit: int = CELL_LIMIT) -> str:
    """`text` cut to `limit` characters with an ellipsis: one 1 MB SKU must not take a minute to lay out."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell(value: Any) -> str:
    """One value (a key part, a group) for people: NULL for None, long text shortened."""
    return short(value_text(value))


def key_text(key: tuple[Any, ...] | list[Any]) -> str:
    return ", ".join(cell(part) for part in key)


def literal(value: Any, style: str = "") -> Text:
    """`value` for a Rich console, printed exactly as written.

    A string handed to Rich is read as console markup (`[a-z]` vanishes, `[red]` colours) and
    `:name:` as an emoji; a Text is not. Everything user-derived (keys, names, messages, paths,
    errors) reaches Rich through this function.
    """
    return Text(value if isinstance(value, str) else value_text(value), style=style)
