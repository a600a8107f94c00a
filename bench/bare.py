"""The leanest code doing the gateway + registration's work for one registration: the baseline of `make bench`'s
ingest ratio. One FastAPI route validates the same body and inserts it as one row into the same database server,
with no authentication, no upstream hop, no duplicate check, no outbox and no audit.

Run as the services are: ``uvicorn --factory bench.bare:create_app``; ``BARE_DATABASE_URL`` is a PostgreSQL URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel

TABLE = """CREATE TABLE IF NOT EXISTS bare_registrations (
    id uuid PRIMARY KEY, given_names text NOT NULL, family_name text NOT NULL, birth_date date NOT NULL,
    data jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"""


class Address(BaseModel):
    street: str
    house_number: str
    postal_code: str
    district: str


class Registration(BaseModel):
    given_names: str
    family_name: str
    birth_date: date
    gender: str
    nationality: str
    languages: list[str]
    preferred_language: str
    residence_status_group: str
    address: Address


def create_app() -> FastAPI:
    pool: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool["db"] = await asyncpg.create_pool(os.environ["BARE_DATABASE_URL"], min_size=2, max_size=10)
        async with pool["db"].acquire() as connection:
            await connection.execute(TABLE)
        yield
        await pool["db"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/registrations", status_code=201)
    async def register(body: Registration) -> dict[str, str]:
        person = uuid.uuid4()
        await pool["db"].execute(
            "INSERT INTO bare_registrations (id, given_names, family_name, birth_date, data) "
            "VALUES ($1, $2, $3, $4, $5)",
            person,
            body.given_names,
            body.family_name,
            body.birth_date,
            body.model_dump_json(),
        )
        return {"person_id": str(person)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
