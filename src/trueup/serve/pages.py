"""The operator dashboard (placeholder until the pages land)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

router = APIRouter(include_in_schema=False)


def mount(app: FastAPI) -> None:
    pass
