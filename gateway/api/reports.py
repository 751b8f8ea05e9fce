"""/api/v1/reports: the summary report as JSON or CSV (staff)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from gateway.api.auth import Principal, principal, require
from gateway.api.errors import ApiError
from gateway.reports.query import build_report, parse_query
from gateway.reports.summary import to_csv

router = APIRouter(prefix="/api/v1")
Caller = Annotated[Principal, Depends(principal)]


@router.get(
    "/reports/summary",
    response_model=None,
    responses={
        200: {
            "description": "the report: JSON, or CSV with format=csv",
            "content": {"application/json": {}, "text/csv": {}},
        }
    },
)
def summary(
    request: Request,
    who: Caller,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    group_by: Annotated[str | None, Query(max_length=20)] = None,
    bucket: Annotated[str | None, Query(max_length=10)] = None,
    format: Literal["json", "csv"] = "json",
) -> Response | dict[str, Any]:
    require(who, "agent", "approver", "admin")
    app = request.app.state
    now = app.clock()
    try:
        query = parse_query(app.settings, now, from_, to, group_by, bucket)
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    report = build_report(app.db, app.settings, query, now)
    if format == "csv":
        name = f"report-{query.start:%Y%m%d}-{query.end:%Y%m%d}.csv"
        return Response(
            to_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return JSONResponse(report)
