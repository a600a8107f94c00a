"""HTTP routes of the integration council's view (proposals, their follow-up and history) and of the district
conference summary.

Analysts and admins make and move proposals (the router's role check, as for every monitoring route); the
actor of each step is the caller's ``X-Actor`` (a staff user name, never a newcomer's).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import as_utc
from chassis.deps import ActorDep, RuntimeDep, require_role
from chassis.errors import Problem
from services.monitoring import conference, council, periods, planning, workflow
from services.monitoring.api import READERS, workflow_for
from services.monitoring.models import CouncilProposal, CouncilProposalEvent
from services.monitoring.planning_api import current_forecast
from services.monitoring.schemas import (
    Document,
    ProposalAction,
    ProposalCreate,
    ProposalList,
    ProposalRead,
    ProposalStep,
)

router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"], dependencies=[require_role(*READERS)])

StatusQuery = Annotated[council.Status | None, Query(description="only proposals in this status")]


def _read(row: CouncilProposal, history: list[CouncilProposalEvent] | None = None) -> ProposalRead:
    return ProposalRead(
        proposal_id=row.proposal_id,
        title=row.title,
        text=row.text,
        rule=row.rule,
        period=row.period,
        status=row.status,
        assignee=row.assignee,
        due_on=row.due_on,
        created_by=row.created_by,
        created_at=as_utc(row.created_at) or row.created_at,
        updated_at=as_utc(row.updated_at) or row.updated_at,
        history=None
        if history is None
        else [
            ProposalStep(
                at=as_utc(e.at) or e.at,
                actor=e.actor,
                action=e.action,
                status=e.status,
                assignee=e.assignee,
                note=e.note,
            )
            for e in history
        ],
    )


async def _history(session: AsyncSession, proposal_id: str) -> list[CouncilProposalEvent]:
    found = await session.scalars(
        select(CouncilProposalEvent)
        .where(CouncilProposalEvent.proposal_id == proposal_id)
        .order_by(CouncilProposalEvent.event_id)
    )
    return list(found.all())


async def _proposal(session: AsyncSession, proposal_id: str) -> CouncilProposal:
    row = await session.get(CouncilProposal, proposal_id) if len(proposal_id) <= 36 else None
    if row is None:
        raise Problem(404, "No such proposal.", kind="not-found")
    return row


@router.get("/council/proposals", response_model=ProposalList)
async def list_proposals(runtime: RuntimeDep, status: StatusQuery = None) -> ProposalList:
    async with runtime.session_factory() as session:
        query = select(CouncilProposal).order_by(CouncilProposal.created_at.desc(), CouncilProposal.proposal_id)
        if status is not None:
            query = query.where(CouncilProposal.status == status.value)
        rows = (await session.scalars(query)).all()
        counted = (
            await session.execute(select(CouncilProposal.status, func.count()).group_by(CouncilProposal.status))
        ).all()
    counts = {s.value: 0 for s in council.Status} | {str(s): int(n) for s, n in counted}
    return ProposalList(items=[_read(r) for r in rows], counts=counts)


@router.post("/council/proposals", response_model=ProposalRead, status_code=201)
async def create_proposal(runtime: RuntimeDep, body: ProposalCreate, actor: ActorDep) -> ProposalRead:
    """Put a proposal before the integration council (status ``proposed``)."""
    async with workflow.unit_of_work(runtime) as uow:
        row, history = await workflow.create_proposal(
            workflow_for(runtime, uow),
            title=body.title,
            text=body.text,
            rule=body.rule,
            period=body.period,
            due_on=body.due_on,
            actor=actor,
        )
    return _read(row, history)


@router.get("/council/proposals/{proposal_id}", response_model=ProposalRead)
async def get_proposal(runtime: RuntimeDep, proposal_id: str) -> ProposalRead:
    async with runtime.session_factory() as session:
        row = await _proposal(session, proposal_id)
        return _read(row, await _history(session, proposal_id))


@router.post("/council/proposals/{proposal_id}/actions", response_model=ProposalRead)
async def act_on_proposal(runtime: RuntimeDep, proposal_id: str, body: ProposalAction, actor: ActorDep) -> ProposalRead:
    """One step of the follow-up: 409 when it does not fit the status, 422 without an assignee or a reason."""
    async with workflow.unit_of_work(runtime) as uow:
        try:
            row, history = await workflow.act_on_proposal(
                workflow_for(runtime, uow),
                proposal_id,
                council.Action(body.action),
                actor=actor,
                assignee=body.assignee,
                note=body.note,
                due_on=body.due_on,
            )
        except workflow.NoSuchProposal as exc:
            raise Problem(404, "No such proposal.", kind="not-found") from exc
        except council.IncompleteAction as exc:
            raise Problem(422, str(exc), kind="validation") from exc
        except workflow.ProposalConflict as exc:
            raise Problem(409, str(exc), kind="conflict", status_now=exc.status_now) from exc
    return _read(row, history)


@router.get(
    "/conference",
    response_model=Document,
    responses={
        200: {
            "description": "JSON, or the document as HTML (German) with format=html",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
)
async def conference_summary(
    runtime: RuntimeDep,
    year: Annotated[int, Query(ge=1990, le=2099, description="the year summarised")],
    format: Literal["json", "html"] = "json",
) -> Response | Document:
    """The city's contribution to the district's integration conference: the year's published indicators, the
    council's proposals and the next school year's demand, in German."""
    async with workflow.unit_of_work(runtime) as uow:
        indicators = await workflow.indicator_document(workflow_for(runtime, uow), periods.Period.parse(f"{year:04d}"))
    async with runtime.session_factory() as session:
        rows = (await session.scalars(select(CouncilProposal).order_by(CouncilProposal.created_at))).all()
    proposals = [_read(r).model_dump(mode="json") for r in rows]
    forecast: planning.Forecast = await current_forecast(runtime)
    document = conference.summary(indicators, proposals, planning.document(forecast))
    if format == "html":
        return HTMLResponse(
            conference.to_html(document, runtime.clock()),
            headers={"Content-Disposition": f'inline; filename="integrationskonferenz-{year}.html"'},
        )
    return document
