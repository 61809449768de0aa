"""API tokens: created once and shown once, stored only as a SHA-256 hash in `trueup_tokens`.

A token is 32 random bytes (URL-safe base64, prefixed `trueup_` so it is
recognisable in a leaked file). The table keeps its name, scope and hash; a
presented token is hashed and compared against every stored hash with
`hmac.compare_digest`, so neither a match nor a miss is faster. Scopes nest:
`read` ⊂ `sync` ⊂ `write` ⊂ `admin`.

    secret = create(connection, "warehouse", "sync")   # print it now: it cannot be read back
    authenticate(connection, secret)                    # -> Token("warehouse", "sync", ...)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from trueup.db import create_missing, dialect_for
from trueup.errors import NotFoundError, UsageError
from trueup.reconcile.audit import now
from trueup.schema import Document, record

SCOPES = ("read", "sync", "write", "admin")
PREFIX = "trueup_"

metadata = sa.MetaData()
tokens = sa.Table(
    "trueup_tokens",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


class Token(NamedTuple):
    name: str
    scope: str
    created_at: datetime

    def allows(self, scope: str) -> bool:
        """Whether this token's scope includes `scope`."""
        return SCOPES.index(self.scope) >= SCOPES.index(scope)


TokenEntry = record(Token, "TokenEntry")


class TokensDocument(Document):
    """What `trueup token list --format json` prints and `GET /api/tokens` answers: names and scopes, never a token."""

    tokens: list[TokenEntry]  # type: ignore[valid-type]


class CreatedDocument(Document):
    """A new token: the only time it is shown."""

    name: str
    scope: str
    token: str


def tokens_document(found: list[Token]) -> TokensDocument:
    return {"tokens": [t._asdict() for t in found]}


def create(connection: Connection, name: str, scope: str) -> str:
    """Store a new token's hash under `name`; return the token itself (the only time it exists in clear)."""
    if scope not in SCOPES:
        raise UsageError(f"unknown scope {scope!r}: one of {', '.join(SCOPES)}")
    if not name or len(name) > 128 or not name.isprintable():
        raise UsageError("a token's name is 1 to 128 printable characters")
    create_missing(connection, metadata)
    secret = PREFIX + secrets.token_urlsafe(32)
    with dialect_for(connection).write_transaction(connection) as tx:
        if tx.execute(sa.select(tokens.c.name).where(tokens.c.name == name)).first():
            raise UsageError(f"a token named {name!r} exists; revoke it first (trueup token revoke {name})")
        tx.execute(tokens.insert().values(name=name, scope=scope, sha256=digest(secret), created_at=now()))
    return secret


def list_tokens(connection: Connection) -> list[Token]:
    if not _exists(connection):
        return []
    query = sa.select(tokens.c.name, tokens.c.scope, tokens.c.created_at).order_by(tokens.c.name)
    return [Token(*row) for row in connection.execute(query)]


def revoke(connection: Connection, name: str) -> None:
    if _exists(connection):
        with dialect_for(connection).write_transaction(connection) as tx:
            if tx.execute(tokens.delete().where(tokens.c.name == name)).rowcount:
                return
    raise NotFoundError(f"no token named {name!r} (trueup token list shows them)")


def authenticate(connection: Connection, secret: str) -> Token | None:
    """The token whose hash matches `secret`, compared in constant time against every stored hash."""
    if not _exists(connection):
        return None
    presented = digest(secret)
    found = None
    rows = connection.execute(sa.select(tokens.c.name, tokens.c.scope, tokens.c.created_at, tokens.c.sha256))
    for name, scope, created_at, stored in rows:
        if hmac.compare_digest(stored, presented):
            found = Token(name, scope, created_at)
    if connection.in_transaction():
        connection.rollback()
    return found


def any_exist(connection: Connection) -> bool:
    return bool(list_tokens(connection))


def digest(secret: str) -> str:
    """What `trueup_tokens` stores of a token: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _exists(connection: Connection) -> bool:
    exists = sa.inspect(connection).has_table(tokens.name)
    if connection.in_transaction():
        connection.rollback()
    return exists
