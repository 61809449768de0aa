"""Django's database settings as the SQLAlchemy URL trueup connects with, and where the config is.

`url_from_settings()` is a pure function of one `settings.DATABASES` entry:

    {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app", "PASSWORD": "s3cret",
     "HOST": "db.internal", "PORT": "5433", "OPTIONS": {"sslmode": "require"}}
    -> postgresql+psycopg://app:s3cret@db.internal:5433/shop?sslmode=require

OPTIONS the driver takes as connection parameters go into the URL's query (MySQL's `ssl` dict
becomes `ssl_ca`, `ssl_cert`, ...); those only Django reads (`isolation_level`, `pool`, ...) are
left out. A host starting with `/` is a Unix socket directory. A URL is rendered with the password
only for the connection itself: `trueup.db.redact` hides it everywhere it is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from trueup.errors import ConfigError

_DRIVERS = {"sqlite3": "sqlite", "postgresql": "postgresql+psycopg", "postgis": "postgresql+psycopg"}
_DRIVERS |= {"mysql": "mysql+pymysql"}
# OPTIONS read by Django's backends themselves, never passed to the driver's connect().
_DJANGO_ONLY = {"isolation_level", "assume_role", "server_side_binding", "pool"}
_SCALARS = (str, int, float, bool)


def url_from_settings(entry: dict[str, Any], alias: str = "default") -> URL:
    """The SQLAlchemy URL of one `settings.DATABASES` entry (ENGINE, NAME, USER, PASSWORD, HOST, PORT, OPTIONS)."""
    where = f"settings.DATABASES[{alias!r}]"
    engine = str(entry.get("ENGINE", ""))
    backend = engine.rpartition(".")[2]
    if backend not in _DRIVERS:
        known = ", ".join(sorted({f"django.db.backends.{name}" for name in ("sqlite3", "postgresql", "mysql")}))
        raise ConfigError(f"{where}['ENGINE']: {engine or 'nothing'} is not supported by trueup (use {known})")
    name = str(entry.get("NAME") or "")
    if backend == "sqlite3":
        if not name or name == ":memory:" or "mode=memory" in name:
            raise ConfigError(f"{where}['NAME']: trueup needs a database file, not an in-memory database")
        return URL.create("sqlite", database=name)
    query = _options(entry.get("OPTIONS") or {}, where)
    host = str(entry.get("HOST") or "") or None
    if host and host.startswith("/"):
        query["host" if backend != "mysql" else "unix_socket"] = host
        host = None
    port = entry.get("PORT")
    return URL.create(
        _DRIVERS[backend],
        username=entry.get("USER") or None,
        password=entry.get("PASSWORD") or None,
        host=host,
        port=int(port) if port not in (None, "") else None,
        database=name or None,
        query=query,
    )


def _options(options: dict[str, Any], where: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in options.items():
        if key in _DJANGO_ONLY:
            continue
        if key == "ssl" and isinstance(value, dict):  # MySQL: {"ca": ..., "cert": ...}
            query |= {f"ssl_{part}": str(setting) for part, setting in value.items()}
        elif isinstance(value, _SCALARS):
            query[key] = str(value).lower() if isinstance(value, bool) else str(value)
        else:
            raise ConfigError(
                f"{where}['OPTIONS'][{key!r}]: a {type(value).__name__} cannot be passed in a database URL; "
                "give trueup the URL yourself with --database"
            )
    return query


def database_url(alias: str = "default") -> str:
    """The URL of a configured database alias, as its connection sees it (the test database during tests)."""
    from django.db import connections
    from django.utils.connection import ConnectionDoesNotExist

    try:
        entry = connections[alias].settings_dict
    except ConnectionDoesNotExist:
        known = ", ".join(connections) or "none"
        raise ConfigError(f"settings.DATABASES has no alias {alias!r} (aliases: {known})") from None
    return url_from_settings(entry, alias).render_as_string(hide_password=False)


def config_path() -> Path:
    """`settings.TRUEUP_CONFIG`, else `trueup.toml` in `settings.BASE_DIR` (else the current directory)."""
    from django.conf import settings

    configured = getattr(settings, "TRUEUP_CONFIG", None)
    if configured:
        return Path(configured)
    return Path(getattr(settings, "BASE_DIR", None) or ".") / "trueup.toml"
