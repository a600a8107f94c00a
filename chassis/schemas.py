"""API model plumbing every service shares: strict request models and paginated lists."""

from __future__ import annotations

import datetime as dt
import types
from typing import Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

T = TypeVar("T")


class Strict(BaseModel):
    """A request model: unknown fields are an error, surrounding white space is dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_number_for_a_date(cls, value: Any, info: ValidationInfo) -> Any:
        # Pydantic's lax mode reads 631152000 as 1990-01-01 (seconds since 1970): a client's bug would be stored
        # as a plausible birth date instead of being refused.
        if (
            isinstance(value, int | float)
            and info.field_name
            and _temporal(cls.model_fields[info.field_name].annotation)
        ):
            raise ValueError("a date or time is written as text (ISO 8601, e.g. 2026-03-14), not as a number")
        return value


def _temporal(annotation: Any) -> bool:
    if annotation in (dt.date, dt.datetime, dt.time):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_temporal(arg) for arg in get_args(annotation))
    return False


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
