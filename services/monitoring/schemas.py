"""API models of the monitoring service (analyst input kept apart from what is read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

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


class RebuildStarted(BaseModel):
    consumer_group: str
    detail: str


#: Indicators, planning data and reports are documents of tables: see ``domain.Table.as_dict``.
Document = dict[str, Any]
