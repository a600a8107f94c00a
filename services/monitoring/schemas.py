"""API models of the monitoring service (analyst input kept apart from what is read)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from chassis.schemas import Strict

District = Annotated[str, StringConstraints(min_length=1, max_length=80)]
Source = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Percent = Annotated[float, Field(ge=0, le=100)]


class DistrictReferenceUpdate(Strict):
    """Population per district (Ortsteil): the reference of the dissimilarity index."""

    source: Source
    illustrative: bool = Field(description="True for demo figures that must be marked as illustrative")
    districts: dict[District, Annotated[int, Field(ge=0, le=10_000_000)]] = Field(min_length=1, max_length=200)


class DistrictReferenceRead(BaseModel):
    source: str | None
    illustrative: bool
    districts: dict[str, int]
    total: int
    updated_at: datetime | None


class BlockEntry(Strict):
    """One residential block (Baublock): the streets stay with registration, the monitoring needs none."""

    block_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    district: District
    population: int = Field(ge=0, le=10_000_000)


class BlockReferenceUpdate(Strict):
    """Residents per residential block: the reference of the block-level dissimilarity index."""

    source: Source
    illustrative: bool = Field(description="True for demo figures that must be marked as illustrative")
    blocks: list[BlockEntry] = Field(min_length=1, max_length=5000)

    @model_validator(mode="after")
    def _once_each(self) -> BlockReferenceUpdate:
        ids = [b.block_id for b in self.blocks]
        if len(set(ids)) < len(ids):
            raise ValueError("each block_id once")
        return self


class BlockReferenceRead(BaseModel):
    source: str | None
    illustrative: bool
    blocks: list[BlockEntry]
    updated_at: datetime | None


class SurveyQuestion(Strict):
    question: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    very_satisfied: Percent
    satisfied: Percent
    less_satisfied: Percent
    dissatisfied: Percent

    @model_validator(mode="after")
    def _adds_up(self) -> SurveyQuestion:
        total = self.very_satisfied + self.satisfied + self.less_satisfied + self.dissatisfied
        if abs(total - 100) > 0.5:
            raise ValueError(f"the answers add up to {total:.2f} %, not 100 %")
        return self


class SurveyUpdate(Strict):
    """The citizens' survey (Bürgerbefragung) figures of one year."""

    year: int = Field(ge=1990, le=2100)
    source: Source
    german_citizens_percent: Percent | None = None
    questions: list[SurveyQuestion] = Field(min_length=1, max_length=50)


class SurveyRead(SurveyUpdate):
    updated_at: datetime


Kind = Literal["kita", "school"]


class CapacityEntry(Strict):
    """Places planned in Kitas or schools of a district for the school year starting 1 September of ``year``."""

    year: int = Field(ge=2000, le=2100)
    district: District
    kind: Kind
    places: int = Field(ge=0, le=100_000)


class CapacitiesUpdate(Strict):
    """All planned places, replaced as a whole (as the city's planning office keeps them)."""

    capacities: list[CapacityEntry] = Field(max_length=2000)

    @model_validator(mode="after")
    def _once_each(self) -> CapacitiesUpdate:
        keys = [(c.year, c.district, c.kind) for c in self.capacities]
        if len(keys) != len(set(keys)):
            raise ValueError("each school year, district and kind may be entered once")
        return self


class CapacitiesRead(BaseModel):
    capacities: list[CapacityEntry]
    updated_at: datetime | None


Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ProposalCreate(Strict):
    """A proposal to the integration council (Integrationsrat)."""

    title: Line
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
    rule: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,40}$")] | None = None
    period: Annotated[str, StringConstraints(pattern=r"^(199[0-9]|20[0-9]{2})(-(0[1-9]|1[0-2])|-Q[1-4])?$")] | None = (
        None
    )
    due_on: date | None = None


class ProposalAction(Strict):
    """A step of the follow-up: accept, reject (with a reason), assign (to an office, a person or a role),
    complete, reopen (with a reason)."""

    action: Literal["accept", "reject", "assign", "complete", "reopen"]
    assignee: Line | None = None
    note: Note | None = None
    due_on: date | None = None


class ProposalStep(BaseModel):
    at: datetime
    actor: str
    action: str
    status: str
    assignee: str | None
    note: str | None


class ProposalRead(BaseModel):
    proposal_id: str
    title: str
    text: str
    rule: str | None
    period: str | None
    status: str
    assignee: str | None
    due_on: date | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    history: list[ProposalStep] | None = None


class ProposalList(BaseModel):
    items: list[ProposalRead]
    counts: dict[str, int]


class RebuildStarted(BaseModel):
    consumer_group: str
    detail: str


#: Indicators, planning data and reports are documents of tables: see ``domain.Table.as_dict``.
Document = dict[str, Any]
