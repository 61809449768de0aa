"""`trueup serve` (the HTTP API and dashboard) and `trueup token` (its API tokens)."""

from __future__ import annotations

import gc
import ipaddress
import logging
from datetime import timedelta
from enum import StrEnum
from typing import Annotated

import typer

from trueup.cli import common
from trueup.cli.app import Group, app
from trueup.cli.options import ConfigOption, DatabaseOption, Output, OutputFormatOption
from trueup.cli.sync import duration
from trueup.errors import UsageError

token_app = typer.Typer(
    cls=Group, help="API tokens for `trueup serve`: create (shown once), list, revoke.", no_args_is_help=True
)
app.add_typer(token_app, name="token")


class Scope(StrEnum):
    read = "read"
    sync = "sync"
    write = "write"
    admin = "admin"


@app.command()
@common.handles_errors
def serve(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    host: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Address to listen on.", show_default="[serve] host, 127.0.0.1"),
    ] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port.", show_default="[serve].port, 8337")] = None,
    watch: Annotated[
        timedelta | None,
        typer.Option(parser=duration, metavar="DURATION", help="Also run watch rounds this often (e.g. 5m)."),
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Scheduled rounds repair what they find.")] = False,
) -> None:
    """Run the HTTP API, the dashboard and (with --watch) scheduled watch rounds, until stopped.

    Example: trueup serve --config trueup.toml --port 8337 --watch 5m --apply
    """
    cfg = common.load_config_for(config, database)
    settings = cfg.serve
    host = host or settings.host
    every = watch or (duration(settings.watch) if settings.watch else None)
    import uvicorn  # the web stack loads for this command only

    from trueup.serve.app import create_app
    from trueup.serve.service import Service

    service = Service(cfg, database)
    with service.connection() as connection:
        _refuse_open_bind(connection, host)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    application = create_app(service, watch=every, watch_apply=apply or settings.watch_apply)
    gc.freeze()  # the app, config and modules live all along: full collections under load skip them
    uvicorn.run(application, host=host, port=port or settings.port, proxy_headers=True, server_header=False)


def _refuse_open_bind(connection: object, host: str) -> None:
    """Anything but loopback needs at least one token: an open port must never serve anonymous writes."""
    from trueup.serve import tokens

    if _loopback(host) or tokens.any_exist(connection):  # type: ignore[arg-type]
        return
    raise UsageError(f"refusing to listen on {host}: create a token first (trueup token create NAME --scope read)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@token_app.command("create")
@common.handles_errors
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses it (recorded on every run it writes).")],
    scope: Annotated[Scope, typer.Option(help="read, sync (+ hooks, ledger), write (+ apply, cost), admin (+ undo).")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create an API token and print it once; only its hash is stored (table trueup_tokens).

    Example: trueup token create warehouse-app --scope sync
    """
    from trueup.serve import tokens

    with common.session(common.load_config_for(config, database), database) as connection:
        secret = tokens.create(connection, name, scope.value)
    typer.echo(secret)
    common.note(f"Token {name!r} ({scope.value}) created; it is shown only now.")


@token_app.command("list")
@common.handles_errors
def list_(config: ConfigOption = None, database: DatabaseOption = None, fmt: OutputFormatOption = Output.table) -> None:
    """List the tokens: names, scopes, when made (never the tokens themselves).

    Example: trueup token list --format json
    """
    from trueup.report.format import to_json
    from trueup.serve import tokens

    with common.session(common.load_config_for(config, database), database) as connection:
        found = tokens.list_tokens(connection)
    if fmt is Output.json:
        typer.echo(to_json(tokens.tokens_document(found)))
        return
    for token in found:
        typer.echo(f"{token.name}\t{token.scope}\t{token.created_at:%Y-%m-%d %H:%M}")
    if not found:
        typer.echo("No tokens yet.")


@token_app.command("revoke")
@common.handles_errors
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Revoke a token: the service refuses it from the next request on.

    Example: trueup token revoke warehouse-app
    """
    from trueup.serve import tokens

    with common.session(common.load_config_for(config, database), database) as connection:
        tokens.revoke(connection, name)
    common.note(f"Token {name!r} revoked.")
