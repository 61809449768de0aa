"""A shop behind a running service for the serve tests: the batches shape, tokens of every scope, a client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests import shapes
from tests.databases import Database
from trueup.config import Config, load_config
from trueup.db import connect, open_engine
from trueup.serve import tokens
from trueup.serve.app import create_app
from trueup.serve.service import Service

SCOPES = ("read", "sync", "write", "admin")


@dataclass
class Shop:
    db: Database
    config_path: Path
    config: Config
    tokens: dict[str, str]  # scope -> secret; each token is named after its scope ("admin-token")

    def packs(self) -> dict[str, int]:
        return {code: int(n) for code, n in self.db.rows("SELECT product_code, packs FROM warehouse_inventory")}

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


def batches_shop(db: Database, tmp_path: Path, extra: str = "") -> Shop:
    """Batches with B-2 recorded 5 (truth 3) and C-3 recorded 1 (truth 0): a plan of two keys."""
    shapes.load_batches(db)
    db.execute("UPDATE warehouse_inventory SET packs = 1 WHERE product_code = 'C-3'")
    path = tmp_path / "trueup.toml"
    path.write_text(f'[database]\nurl = "{db.url}"\n' + extra + shapes.batches.CONFIG)
    engine = open_engine(db.url)
    try:
        with connect(engine) as connection:
            secrets = {scope: tokens.create(connection, f"{scope}-token", scope) for scope in SCOPES}
    finally:
        engine.dispose()
    return Shop(db, path, load_config(path), secrets)


def app_for(shop: Shop, **options: Any) -> FastAPI:
    return create_app(Service(shop.config), **options)


@contextmanager
def client(shop: Shop, **options: Any) -> Iterator[TestClient]:
    with TestClient(app_for(shop, **options), raise_server_exceptions=False) as test_client:
        yield test_client


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


def get(base: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(base + path, timeout=30, **kwargs)
