"""HTTP routes of the monitoring service: indicators, planning data, analyst input, the council report.

Only the ``analyst`` and ``admin`` roles read or write here (header ``X-Role``, set by the gateway);
a rebuild of the read model is for ``admin`` only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from chassis.clock import as_utc
from chassis.deps import RuntimeDep, require_role
from chassis.errors import Problem
from services.monitoring import blocks, domain, periods, report, workflow
from services.monitoring.models import SurveyFigures
from services.monitoring.schemas import (
    BlockEntry,
    BlockReferenceRead,
    BlockReferenceUpdate,
    DistrictReferenceRead,
    DistrictReferenceUpdate,
    Document,
    RebuildStarted,
    SurveyQuestion,
    SurveyRead,
    SurveyUpdate,
)

READERS = frozenset({"analyst", "admin"})


router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"], dependencies=[require_role(*READERS)])

#: Documented as a pattern too, so that a client (or a fuzzer) can tell a period from any other text. Years
#: from 1990 (the survey's too): a report compares with the period before, which the domain's four-digit
#: periods cannot name before the year 1000.
PeriodQuery = Annotated[
    str,
    Query(
        max_length=7,
        pattern=r"^(199[0-9]|20[0-9]{2})(-(0[1-9]|1[0-2])|-[Qq][1-4])?$",
        description="2026-11 (month), 2026-Q4 (quarter) or 2026 (year)",
    ),
]


def parse_period(text: str) -> periods.Period:
    try:
        return periods.Period.parse(text)
    except periods.PeriodError as exc:
        raise Problem(422, str(exc), kind="validation", title="Invalid period") from exc


async def _document(runtime: RuntimeDep, period: periods.Period) -> Document:
    async with workflow.unit_of_work(runtime) as uow:
        return await workflow.indicator_document(workflow_for(runtime, uow), period)


def workflow_for(runtime: RuntimeDep, uow: workflow.StoreUnitOfWork) -> workflow.Workflow:
    """A use case's context: ``uow``, the service's clock now and its k of the disclosure control (for the council's
    and the planning's routes too)."""
    k: int = getattr(runtime.settings, "k_anonymity", 5)
    return workflow.Workflow(uow, runtime.clock(), k)


@router.get("/indicators", response_model=Document)
async def indicators(runtime: RuntimeDep, period: PeriodQuery) -> Document:
    return await _document(runtime, parse_period(period))


@router.get("/planning", response_model=Document)
async def planning(runtime: RuntimeDep) -> Document:
    async with workflow.unit_of_work(runtime) as uow:
        w = workflow_for(runtime, uow)
        return await workflow.planning_document(w, periods.local_day(w.now))


@router.get(
    "/report",
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "The council report: an HTML page, or CSV",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def council_report(runtime: RuntimeDep, period: PeriodQuery, format: Literal["html", "csv"] = "html") -> Response:
    chosen = parse_period(period)
    document = await _document(runtime, chosen)
    if format == "csv":
        return Response(
            report.to_csv(document),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="monitoring-{chosen.label}.csv"'},
        )
    return HTMLResponse(report.to_html(document, runtime.clock()))


async def district_reference(runtime: RuntimeDep) -> DistrictReferenceRead:
    async with workflow.unit_of_work(runtime) as uow:
        entered = await workflow.districts(workflow_for(runtime, uow))
    population = dict(entered.reference.population) if entered.reference else {}
    return DistrictReferenceRead(
        source=entered.reference.source if entered.reference else None,
        illustrative=entered.reference.illustrative if entered.reference else False,
        districts=population,
        total=sum(population.values()),
        updated_at=entered.updated_at,
    )


@router.get("/reference/districts", response_model=DistrictReferenceRead)
async def get_districts(runtime: RuntimeDep) -> DistrictReferenceRead:
    return await district_reference(runtime)


@router.put("/reference/districts", response_model=DistrictReferenceRead)
async def put_districts(runtime: RuntimeDep, body: DistrictReferenceUpdate) -> DistrictReferenceRead:
    """Replace the district population (the reference of the dissimilarity index) as a whole."""
    await store_districts(runtime, body)
    return await district_reference(runtime)


async def store_districts(runtime: RuntimeDep, body: DistrictReferenceUpdate) -> None:
    reference = domain.DistrictReference(dict(body.districts), body.source, body.illustrative)
    async with workflow.unit_of_work(runtime) as uow:
        await workflow.replace_districts(workflow_for(runtime, uow), reference)


async def block_population(runtime: RuntimeDep) -> BlockReferenceRead:
    async with workflow.unit_of_work(runtime) as uow:
        entered = await workflow.block_population(workflow_for(runtime, uow))
    found = entered.reference
    return BlockReferenceRead(
        source=found.source if found else None,
        illustrative=found.illustrative if found else False,
        blocks=[
            BlockEntry(block_id=b.block_id, name=b.name, district=b.district, population=b.population)
            for b in (found.blocks if found else ())
        ],
        updated_at=entered.updated_at,
    )


@router.get("/reference/blocks", response_model=BlockReferenceRead)
async def get_blocks(runtime: RuntimeDep) -> BlockReferenceRead:
    return await block_population(runtime)


@router.put("/reference/blocks", response_model=BlockReferenceRead)
async def put_blocks(runtime: RuntimeDep, body: BlockReferenceUpdate) -> BlockReferenceRead:
    """Replace the residents per residential block (Baublock; the reference of the block-level index) as a whole.
    Registration gives each address its block from the same reference (``REGISTRATION_BLOCKS_FILE``)."""
    await store_blocks(runtime, body)
    return await block_population(runtime)


async def store_blocks(runtime: RuntimeDep, body: BlockReferenceUpdate) -> None:
    entries = [blocks.Block(b.block_id, b.name, b.district, b.population) for b in body.blocks]
    async with workflow.unit_of_work(runtime) as uow:
        await workflow.replace_blocks(
            workflow_for(runtime, uow), blocks.BlockReference(entries, body.source, body.illustrative)
        )


def _survey_read(row: SurveyFigures) -> SurveyRead:
    return SurveyRead(
        year=row.year,
        source=row.source,
        german_citizens_percent=row.german_citizens_percent,
        questions=[SurveyQuestion(question=q, **answers) for q, answers in row.questions.items()],
        updated_at=as_utc(row.updated_at),  # SQLite hands back naive times
    )


@router.get("/survey", response_model=list[SurveyRead])
async def list_surveys(runtime: RuntimeDep) -> list[SurveyRead]:
    async with runtime.session_factory() as session:
        rows = (await session.scalars(select(SurveyFigures).order_by(SurveyFigures.year))).all()
    return [_survey_read(r) for r in rows]


@router.put("/survey", response_model=SurveyRead)
async def put_survey(runtime: RuntimeDep, body: SurveyUpdate) -> SurveyRead:
    """Enter (or correct) the citizens' survey figures of one year."""
    return await store_survey(runtime, body)


async def store_survey(runtime: RuntimeDep, body: SurveyUpdate) -> SurveyRead:
    questions = {q.question: q.model_dump(exclude={"question"}) for q in body.questions}
    survey = domain.Survey(body.year, body.source, body.german_citizens_percent, questions)
    async with workflow.unit_of_work(runtime) as uow:
        row = await workflow.enter_survey(workflow_for(runtime, uow), survey)
    return _survey_read(row)


@router.post("/rebuild", status_code=202, response_model=RebuildStarted, dependencies=[require_role("admin")])
async def start_rebuild(runtime: RuntimeDep) -> RebuildStarted:
    """Wipe the read model and replay every topic from the start (analyst input stays)."""
    group = await workflow.rebuild(runtime)
    return RebuildStarted(
        consumer_group=group, detail="Replaying all topics; figures are complete once the group has caught up."
    )
