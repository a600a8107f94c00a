"""Monitoring's use cases (services/monitoring/workflow.py) in memory: a fake unit of work with an in-memory store
stands in for the database, so that what a use case loads, asks the rules and stores is checked without I/O.

The fake keeps the real unit of work's promise: what a use case adds is pending until ``commit``; a refused step
commits nothing. The SQL store behind the same interface is covered by tests/service/test_monitoring_*.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.monitoring import council, planning, workflow
from services.monitoring.blocks import Block, BlockReference
from services.monitoring.domain import DistrictReference, Facts, Survey
from services.monitoring.models import CouncilProposal, CouncilProposalEvent, SurveyFigures
from services.monitoring.periods import Period
from tests.unit.test_monitoring_domain import FACTS, REFERENCE
from tests.unit.test_monitoring_planning import TODAY, example

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


class InMemoryStore:
    """:class:`workflow.Store` over lists: committed rows, and the rows added since the last commit."""

    def __init__(self, facts: Facts = Facts(), capacities: list[planning.Capacity] | None = None) -> None:
        self._facts = facts
        self._capacities = list(capacities or [])
        self.proposals: dict[str, CouncilProposal] = {}
        self.events: list[CouncilProposalEvent] = []
        self.pending: list[CouncilProposal | CouncilProposalEvent] = []
        #: The analysts' input written since the last commit, applied by it.
        self.writes: list[Callable[[], None]] = []
        #: When each reference was entered.
        self.entered_at: dict[str, datetime] = {}

    async def facts(self) -> Facts:
        return self._facts

    async def capacities(self) -> list[planning.Capacity]:
        return list(self._capacities)

    async def proposal(self, proposal_id: str) -> CouncilProposal | None:
        return self.proposals.get(proposal_id)

    async def history(self, proposal_id: str) -> list[CouncilProposalEvent]:
        # Like a session's query after a flush: the steps added in this unit of work are part of the answer.
        steps = [*self.events, *(r for r in self.pending if isinstance(r, CouncilProposalEvent))]
        return [s for s in steps if s.proposal_id == proposal_id]

    def add(self, *rows: CouncilProposal | CouncilProposalEvent) -> None:
        self.pending.extend(rows)

    async def districts(self) -> workflow.Entered[DistrictReference]:
        return workflow.Entered(self._facts.reference, self.entered_at.get("districts"))

    async def block_population(self) -> workflow.Entered[BlockReference]:
        return workflow.Entered(self._facts.blocks, self.entered_at.get("blocks"))

    async def replace_districts(self, reference: DistrictReference, at: datetime) -> None:
        self.writes.append(lambda: self._set(reference=reference))
        self.writes.append(lambda: self.entered_at.update(districts=at))

    async def replace_blocks(self, reference: BlockReference, at: datetime) -> None:
        self.writes.append(lambda: self._set(blocks=reference))
        self.writes.append(lambda: self.entered_at.update(blocks=at))

    async def put_survey(self, survey: Survey, at: datetime) -> SurveyFigures:
        kept = [s for s in self._facts.surveys if s.year != survey.year]
        self.writes.append(lambda: self._set(surveys=(*kept, survey)))
        return SurveyFigures(
            year=survey.year,
            source=survey.source,
            questions=dict(survey.questions),
            german_citizens_percent=survey.german_citizens_percent,
            updated_at=at,
        )

    async def replace_capacities(self, capacities: Sequence[planning.Capacity], at: datetime) -> None:
        self.writes.append(lambda: setattr(self, "_capacities", list(capacities)))

    def _set(self, **changes: Any) -> None:
        self._facts = replace(self._facts, **changes)

    def commit(self) -> None:
        while self.writes:
            self.writes.pop(0)()
        for row in self.pending:
            if isinstance(row, CouncilProposal):
                self.proposals[row.proposal_id] = row
            else:
                self.events.append(row)
        self.pending.clear()


class FakeUnitOfWork:
    """Ducks :class:`workflow.StoreUnitOfWork` (a store and a commit), counting the commits."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.commits = 0

    async def commit(self) -> None:
        self.store.commit()
        self.commits += 1


def flow(store: InMemoryStore | None = None, k: int = 3) -> tuple[workflow.Workflow, FakeUnitOfWork]:
    uow = FakeUnitOfWork(store or InMemoryStore())
    return workflow.Workflow(uow, NOW, k), uow


async def test_the_indicator_document_is_the_stores_facts_protected_with_the_workflows_k() -> None:
    w, uow = flow(InMemoryStore(FACTS), k=3)
    document = await workflow.indicator_document(w, Period.parse("2026-11"))
    assert (document["period"], document["previous_period"], document["k"]) == ("2026-11", "2026-10", 3)
    by_id = {t["id"]: t for g in document["groups"] for t in g["indicators"]}
    # The fixed scenario's figures (tests/unit/test_monitoring_domain.py): RO's two registrations are withheld.
    nationality = {r["label"]: r["cells"]["count"] for r in by_id["registrations_by_nationality"]["rows"]}
    assert nationality["UA"] == {"value": 5, "suppressed": False}
    assert nationality["RO"] == {"value": None, "suppressed": True}
    assert [p["rule"] for p in document["proposals"]] == ["R1-waiting-list"]
    assert uow.commits == 0  # reading stores nothing


async def test_a_larger_k_withholds_more_of_the_same_facts() -> None:
    w, _ = flow(InMemoryStore(FACTS), k=6)
    document = await workflow.indicator_document(w, Period.parse("2026-11"))
    by_id = {t["id"]: t for g in document["groups"] for t in g["indicators"]}
    nationality = {r["label"]: r["cells"]["count"] for r in by_id["registrations_by_nationality"]["rows"]}
    assert nationality["UA"]["suppressed"]  # 5 < 6


async def test_the_forecast_sets_the_stores_places_against_the_demand() -> None:
    store = InMemoryStore(Facts(persons=example()), [planning.Capacity(2027, "Altstadt", "school", 30)])
    w, uow = flow(store, k=5)
    result = await workflow.forecast(w, TODAY)
    first = next(r for r in result.rows if (r.year, r.district, r.kind) == (2027, "Altstadt", "school"))
    assert (first.expected, first.places, first.gap) == (28, 30, 2)  # the hand-computed example's figures
    assert uow.commits == 0


async def test_the_planning_document_counts_the_children_living_here() -> None:
    w, _ = flow(InMemoryStore(Facts(persons=example())), k=5)
    document = await workflow.planning_document(w, TODAY)
    assert document["as_of"] == TODAY.isoformat()
    households = next(t for t in document["tables"] if t["id"] == "households_with_children")
    assert households["rows"][0]["cells"]["count"] == {"value": 51, "suppressed": False}  # 48 + 3, one each


async def test_a_proposal_is_created_proposed_with_its_first_step_and_committed() -> None:
    store = InMemoryStore()
    w, uow = flow(store)
    row, history = await workflow.create_proposal(
        w,
        title="Weiterer Integrationskurs",
        text="Warteliste länger als freie Plätze",
        rule="R1-waiting-list",
        period="2026-11",
        due_on=date(2027, 3, 1),
        actor="analyst",
    )
    assert uow.commits == 1
    assert store.proposals[row.proposal_id] is row
    assert (row.status, row.created_by, row.created_at, row.due_on) == ("proposed", "analyst", NOW, date(2027, 3, 1))
    assert [(s.action, s.status, s.actor, s.at) for s in history] == [("create", "proposed", "analyst", NOW)]


async def test_accepting_then_assigning_keeps_the_whole_history() -> None:
    w, uow = flow()
    row, _ = await workflow.create_proposal(w, title="t", text="x", rule=None, period=None, due_on=None, actor="a")
    await workflow.act_on_proposal(w, row.proposal_id, council.Action.ACCEPT, actor="admin")
    later = workflow.Workflow(uow, datetime(2026, 12, 2, tzinfo=UTC), 3)
    after, history = await workflow.act_on_proposal(
        later,
        row.proposal_id,
        council.Action.ASSIGN,
        actor="admin",
        assignee="Amt für Bildung",
        due_on=date(2027, 1, 31),
    )
    assert (after.status, after.assignee, after.due_on) == ("in_progress", "Amt für Bildung", date(2027, 1, 31))
    assert after.updated_at == datetime(2026, 12, 2, tzinfo=UTC)
    assert [(s.action, s.status) for s in history] == [
        ("create", "proposed"),
        ("accept", "accepted"),
        ("assign", "in_progress"),
    ]
    assert uow.commits == 3


async def test_a_step_that_does_not_fit_is_refused_and_stores_nothing() -> None:
    store = InMemoryStore()
    w, uow = flow(store)
    row, _ = await workflow.create_proposal(w, title="t", text="x", rule=None, period=None, due_on=None, actor="a")
    with pytest.raises(workflow.ProposalConflict) as refused:
        await workflow.act_on_proposal(w, row.proposal_id, council.Action.COMPLETE, actor="admin")
    assert refused.value.status_now == "proposed"  # for the 409's Problem Details
    with pytest.raises(council.IncompleteAction):
        await workflow.act_on_proposal(w, row.proposal_id, council.Action.REJECT, actor="admin", note="  ")
    assert (row.status, uow.commits) == ("proposed", 1)
    assert len(store.events) == 1 and store.pending == []


async def test_an_unknown_proposal_is_named_as_such() -> None:
    w, uow = flow()
    with pytest.raises(workflow.NoSuchProposal):
        await workflow.act_on_proposal(w, "no-such-id", council.Action.ACCEPT, actor="admin")
    assert uow.commits == 0


def indicator(document: dict[str, Any], table_id: str) -> dict[str, Any]:
    return next(t for g in document["groups"] for t in g["indicators"] if t["id"] == table_id)


async def test_the_district_population_entered_is_what_the_dissimilarity_index_measures_against() -> None:
    store = InMemoryStore(replace(FACTS, reference=None))
    w, uow = flow(store, k=3)
    nov = Period.parse("2026-11")
    before = indicator(await workflow.indicator_document(w, nov), "dissimilarity_index")
    assert before["rows"][0]["cells"]["D"]["value"] is None and before["note"] == "No district population uploaded."
    await workflow.replace_districts(w, REFERENCE)
    after = indicator(await workflow.indicator_document(w, nov), "dissimilarity_index")
    assert after["rows"][0]["cells"]["D"]["value"] == 0.138  # the fixed scenario's hand-computed index
    assert uow.commits == 1


async def test_a_survey_entered_is_published_from_its_year_on() -> None:
    w, uow = flow(InMemoryStore(FACTS), k=3)
    answers = {"very_satisfied": 20.0, "satisfied": 50.0, "less_satisfied": 20.0, "dissatisfied": 10.0}
    row = await workflow.enter_survey(w, Survey(2026, "Bürgerbefragung 2026", 81.0, {"Wohnen": answers}))
    assert (row.year, row.updated_at, uow.commits) == (2026, NOW, 1)
    survey = indicator(await workflow.indicator_document(w, Period.parse("2026-11")), "citizens_survey")
    assert survey["rows"][0]["cells"]["satisfied"] == {"value": 50.0, "suppressed": False}
    earlier = await workflow.indicator_document(w, Period.parse("2025-11"))
    assert all(t["id"] != "citizens_survey" for g in earlier["groups"] for t in g["indicators"])


async def test_places_entered_replace_the_earlier_ones_in_the_forecast() -> None:
    store = InMemoryStore(Facts(persons=example()), [planning.Capacity(2027, "Weststadt", "school", 99)])
    w, _ = flow(store, k=5)
    await workflow.replace_capacities(w, [planning.Capacity(2027, "Altstadt", "school", 20)])
    result = await workflow.forecast(w, TODAY)
    placed = {(r.year, r.district, r.kind): (r.places, r.gap) for r in result.rows if r.places is not None}
    assert placed == {(2027, "Altstadt", "school"): (20, -8)}  # 28 children expected


async def test_the_district_population_reads_back_as_entered_and_when() -> None:
    w, uow = flow(InMemoryStore(replace(FACTS, reference=None)))
    assert await workflow.districts(w) == workflow.Entered(None, None)
    await workflow.replace_districts(w, REFERENCE)
    assert await workflow.districts(w) == workflow.Entered(REFERENCE, NOW)
    assert uow.commits == 1


async def test_the_blocks_entered_replace_the_earlier_ones_and_read_back_with_their_moment() -> None:
    w, uow = flow(InMemoryStore(Facts()))
    assert await workflow.block_population(w) == workflow.Entered(None, None)
    first = BlockReference([Block("b-1", "Am Anger", "Altstadt", 120)], "Stadt Landsberg", illustrative=True)
    second = BlockReference([Block("b-2", "Hinterer Anger", "Altstadt", 80)], "Zensus 2022", illustrative=False)
    await workflow.replace_blocks(w, first)
    await workflow.replace_blocks(w, second)
    assert await workflow.block_population(w) == workflow.Entered(second, NOW)
    assert uow.commits == 2
    assert (await w.store.facts()).blocks == second  # what the block-level index measures against


async def test_blocks_left_without_commit_are_not_entered() -> None:
    store = InMemoryStore(Facts())
    await store.replace_blocks(BlockReference([Block("b-1", "Am Anger", "Altstadt", 1)], "x", False), NOW)
    assert (await store.block_population()).reference is None  # pending until the unit of work commits
