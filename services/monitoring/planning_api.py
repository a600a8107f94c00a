"""HTTP routes of school and Kita planning: the five-year forecast (JSON or CSV) and the places the city enters."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from chassis.clock import as_utc
from chassis.deps import RuntimeDep, require_role
from services.monitoring import periods, planning, workflow
from services.monitoring.api import READERS, workflow_for
from services.monitoring.models import PlanningCapacity
from services.monitoring.schemas import CapacitiesRead, CapacitiesUpdate, CapacityEntry, Document

router = APIRouter(prefix="/api/v1/monitoring/planning", tags=["monitoring"], dependencies=[require_role(*READERS)])


async def _capacities(runtime: RuntimeDep) -> list[PlanningCapacity]:
    async with runtime.session_factory() as session:
        query = select(PlanningCapacity).order_by(
            PlanningCapacity.year, PlanningCapacity.district, PlanningCapacity.kind
        )
        return list((await session.scalars(query)).all())


@router.get(
    "/forecast",
    response_model=Document,
    responses={
        200: {"description": "JSON, or CSV with format=csv", "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def get_forecast(runtime: RuntimeDep, format: Literal["json", "csv"] = "json") -> Response | Document:
    """Kita and school demand per school year and district for the next five years, against the planned places."""
    result = await current_forecast(runtime)
    today = result.as_of
    if format == "csv":
        return Response(
            planning.to_csv(result),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="planning-{today.isoformat()}.csv"'},
        )
    return planning.document(result)


async def current_forecast(runtime: RuntimeDep) -> planning.Forecast:
    async with workflow.unit_of_work(runtime) as uow:
        w = workflow_for(runtime, uow)
        return await workflow.forecast(w, periods.local_day(w.now))


def _read(rows: list[PlanningCapacity]) -> CapacitiesRead:
    return CapacitiesRead(
        capacities=[CapacityEntry(year=r.year, district=r.district, kind=r.kind, places=r.places) for r in rows],
        updated_at=as_utc(max((r.updated_at for r in rows), default=None)),
    )


@router.get("/capacities", response_model=CapacitiesRead)
async def get_capacities(runtime: RuntimeDep) -> CapacitiesRead:
    return _read(await _capacities(runtime))


@router.put("/capacities", response_model=CapacitiesRead)
async def put_capacities(runtime: RuntimeDep, body: CapacitiesUpdate) -> CapacitiesRead:
    """Replace the planned places as a whole."""
    capacities = [planning.Capacity(c.year, c.district, c.kind, c.places) for c in body.capacities]
    async with workflow.unit_of_work(runtime) as uow:
        await workflow.replace_capacities(workflow_for(runtime, uow), capacities)
    return _read(await _capacities(runtime))
