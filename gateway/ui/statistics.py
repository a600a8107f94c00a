"""The analysts' page: choose a period, read the council report or take its figures as CSV."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from gateway.ui.kit import Kit

#: As the monitoring service takes it: a year 1990-2099, a quarter or a month of it.
PERIOD = re.compile(r"^(199[0-9]|20[0-9]{2})(-(0[1-9]|1[0-2])|-Q[1-4])?$")


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/statistics", response_class=HTMLResponse)
    async def statistics(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        period = request.query_params.get("period") or datetime.now(UTC).strftime("%Y-%m")
        if not PERIOD.fullmatch(period):
            return ui.render(request, "statistics.html", 422, user=user, period=period, period_error=True)
        found = await ui.call(request, user, "GET", "monitoring/indicators", params={"period": period})
        if not found.ok:
            return ui.trouble(request, user, found)
        return ui.render(request, "statistics.html", user=user, period=period, period_error=False)

    @router.get("/statistics/report")
    async def statistics_report(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        period = request.query_params.get("period", "")
        fmt = "csv" if request.query_params.get("format") == "csv" else "html"
        if not PERIOD.fullmatch(period):
            return ui.render(request, "statistics.html", 422, user=user, period=period, period_error=True)
        found = await ui.call(request, user, "GET", "monitoring/report", params={"period": period, "format": fmt})
        if not found.ok:
            return ui.trouble(request, user, found)
        return Response(found.content, media_type=found.media_type)
