"""A database error is logged without the personal data its statement carried (issue 12).

SQLAlchemy puts a failed statement's parameters into the error's text, and the service logs unexpected errors with
their traceback: a registration that failed in the database wrote the newcomer's name and birth date into the log.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import newcomer


async def test_a_failed_registration_logs_neither_name_nor_birth_date(
    registration: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = registration.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.engine.begin() as conn:
        # The database refuses every new person: the registration's insert fails there, with its parameters bound.
        if conn.dialect.name == "sqlite":
            await conn.execute(
                text("CREATE TRIGGER refuse BEFORE INSERT ON persons BEGIN SELECT RAISE(ABORT, 'refused'); END")
            )
        else:
            await conn.execute(text("ALTER TABLE persons ADD CONSTRAINT refuse CHECK (false) NOT VALID"))
    body = newcomer(given_names="Zuleikha Unverwechselbar", family_name="Quenstedt-Ybarra", birth_date="1987-06-05")
    # As a server answers: the error becomes a 500 Problem instead of reaching the test.
    transport = httpx.ASGITransport(app=registration.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            reply = await client.post("/api/v1/registrations", json=body)
    assert reply.status_code == 500
    logged = "\n".join(
        record.getMessage() + "\n" + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "INSERT INTO persons" in logged, "the error itself is logged, so that it can be found"
    for value in ("Zuleikha", "Unverwechselbar", "Quenstedt-Ybarra", "1987-06-05", "Schwaighofstraße", "8191"):
        assert value not in logged, f"{value!r} reached the log"
        assert value not in reply.text
