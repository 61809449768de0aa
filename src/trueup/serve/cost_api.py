"""Cost of goods sold over HTTP: upload the two exports (or give queries), get the summary and findings.

`POST /api/cost` takes multipart `sales` and `lots` files (CSV, .xlsx or
.parquet, named as exported, so findings say `sales.csv:4`), or `sales_sql` /
`lots_sql` run on the configured database; the other fields are the CLI's
options. The answer is the document `trueup cost --format json` prints, with
the output files as links under `/api/cost/{id}/`. `write` (with `apply` to
commit) stores the results in the database as `cost --write` does, and needs
the `write` scope.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Any, NamedTuple, NotRequired

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import FileResponse

from trueup.cost import compute, write_outputs
from trueup.cost.read import read_query
from trueup.cost.result import CostResult
from trueup.cost.store import store
from trueup.cost.write import CostDocument, SummaryEntry, result_dict
from trueup.errors import DatabaseError, NotFoundError, UsageError
from trueup.reconcile import audit
from trueup.report.cost import StoreDocument, store_dict
from trueup.serve.api import Reader, json_response, known_query
from trueup.serve.auth import allowed, service_of
from trueup.serve.errors import BODY, TOKEN, about, failures
from trueup.serve.service import Service

router = APIRouter(prefix="/api/cost", tags=["cost"], dependencies=[Depends(known_query)])

OUTPUTS = ("cogs.csv", "lots_remaining.csv", "quarantine.csv", "quarantined_rows.csv", "summary.json", "report.html")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class CostAnswer(CostDocument):
    files: dict[str, str]  # output file name -> where to download it
    database: NotRequired[StoreDocument]  # with write: what was (or, without apply, would be) stored


# An output as its name says: the CSVs and the report as text, summary.json the summary it holds.
DOWNLOADS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file",
        "model": SummaryEntry,
        "content": {"text/csv": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "",
    summary="FIFO (or LIFO, average) cost of goods sold; bad SKUs quarantined, never the batch",
    response_model=CostAnswer,
    responses=failures(*TOKEN, *BODY),
)
def cost(
    request: Request,
    token: Reader,
    sales: Annotated[UploadFile | None, File(description="Sales export.")] = None,
    lots: Annotated[UploadFile | None, File(description="Purchase-lot export.")] = None,
    sales_sql: Annotated[str | None, Form()] = None,
    lots_sql: Annotated[str | None, Form()] = None,
    method: Annotated[str, Form()] = "fifo",
    map_: Annotated[list[str] | None, Form(alias="map", description='sales.sku="Item Code"')] = None,
    policy: Annotated[list[str] | None, Form(description="date_mismatch=medium")] = None,
    date_format: Annotated[str | None, Form()] = None,
    sku_case: Annotated[str, Form()] = "upper",
    report: Annotated[bool, Form()] = False,
    write: Annotated[bool, Form(description="Also store the results in the database.")] = False,
    apply: Annotated[bool, Form(description="With write: commit, as a run undo reverts.")] = False,
) -> Response:
    if write:
        allowed(token, "write")
    if apply and not write:
        raise UsageError("apply commits what write stores; give both")
    options = {"method": method, "policy": policy, "columns": map_, "date_format": date_format, "sku_case": sku_case}
    done = run_cost(service_of(request), sales, lots, sales_sql, lots_sql, report=report, **options)
    document: CostAnswer = {**done.document, "files": {name: f"/api/cost/{done.id}/{name}" for name in done.files}}
    if write:
        with service_of(request).connection() as connection, audit.acting_as(token.name):
            document["database"] = store_dict(store(connection, done.result, apply=apply, triggered_by="api"))
    return json_response(document)


class CostRun(NamedTuple):
    id: str  # names its folder in the workspace, for downloads
    result: CostResult
    document: CostDocument  # what `trueup cost --format json` prints
    files: list[str]


def run_cost(
    service: Service,
    sales: UploadFile | None,
    lots: UploadFile | None,
    sales_sql: str | None = None,
    lots_sql: str | None = None,
    *,
    report: bool = False,
    **options: Any,
) -> CostRun:
    """Cost the two inputs, writing the output files into a new folder of the workspace."""
    run_id = uuid.uuid4().hex
    folder = service.workspace / run_id
    inputs = [
        _input(service, folder, role, upload, sql)
        for role, upload, sql in (("sales", sales, sales_sql), ("lots", lots, lots_sql))
    ]
    with about("method"):
        result = compute(*inputs, **options)
    written = write_outputs(result, folder / "out", report=report)
    return CostRun(run_id, result, result_dict(result), [p.name for p in written])


def output_path(service: Service, run_id: str, name: str) -> Path:
    path = service.workspace / run_id / "out" / name
    if not re.fullmatch(r"[0-9a-f]{32}", run_id) or name not in OUTPUTS or not path.is_file():
        raise NotFoundError(f"no output {name!r} for cost run {run_id!r}")
    return path


@router.get(
    "/{run_id}/{name}",
    summary="Download one output file of a cost run",
    response_class=FileResponse,
    responses=DOWNLOADS | failures(*TOKEN, 404),
)
def output(request: Request, token: Reader, run_id: str, name: str) -> FileResponse:
    return FileResponse(output_path(service_of(request), run_id, name), filename=name)


def _input(service: Service, folder: Path, role: str, upload: UploadFile | None, sql: str | None) -> Any:
    """The uploaded file, saved under its own (cleaned) name; or the query's rows."""
    if (upload is None) == (sql is None):
        error = UsageError(f"give exactly one of {role} (a file) or {role}_sql (a query)")
        error.field = role  # type: ignore[attr-defined]
        raise error
    if sql is not None:
        with service.connection() as connection, about(f"{role}_sql"):
            try:
                return read_query(f"{role} query", connection, sql)
            except DatabaseError as error:  # the caller's own SQL: bad input, not an outage
                raise UsageError(str(error)) from None
    assert upload is not None
    name = _SAFE_NAME.sub("_", Path(upload.filename or role).name).lstrip(".") or role
    (folder / role).mkdir(parents=True, exist_ok=True)
    path = folder / role / name
    with path.open("wb") as handle:
        while chunk := upload.file.read(1 << 20):
            handle.write(chunk)
    return path
