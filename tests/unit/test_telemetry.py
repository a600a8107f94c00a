"""The services' traces reach the database: statement spans on the installed SQLAlchemy (2.1, which the
instrumentation does not declare), beside the request spans."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chassis.settings import ServiceSettings
from chassis.telemetry import install_dumps, instrument_app


async def test_a_request_that_queries_the_database_leaves_a_statement_span(caplog: pytest.LogCaptureFixture) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    engine = create_async_engine("sqlite+aiosqlite://")
    app = FastAPI()

    @app.get("/one")
    async def one() -> int:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT 1"))).scalar_one())

    with caplog.at_level(logging.ERROR):
        settings = ServiceSettings(environment="development", otel_exporter="console")
        instrument_app(app, engine, settings, tracer_provider=provider)
    assert not [r for r in caplog.records if "instrument" in r.getMessage()], "the instrumentation refused itself"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            assert (await client.get("/one")).json() == 1
    finally:
        await engine.dispose()
    names = [span.name for span in exported.get_finished_spans()]
    assert "SELECT" in names, names
    assert any(name.startswith("GET /one") for name in names), names


async def test_a_signal_logs_where_each_task_waits(caplog: pytest.LogCaptureFixture) -> None:
    """``kill -USR1`` on a service that went quiet names the awaits its tasks are in, down to the innermost."""
    release = asyncio.Event()

    async def waits_for_the_broker() -> None:
        await release.wait()

    async def consume() -> None:
        await waits_for_the_broker()

    task = asyncio.create_task(consume(), name="referral-consumer")
    await asyncio.sleep(0)
    install_dumps(signal.SIGUSR1)
    try:
        with caplog.at_level(logging.WARNING, logger="chassis.telemetry"):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(100):
                if caplog.records:
                    break
                await asyncio.sleep(0.01)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        faulthandler.unregister(signal.SIGUSR2)
        release.set()
        await task
    line = next(line for line in caplog.records[0].getMessage().splitlines() if line.startswith("referral-consumer:"))
    assert re.search(r"\d consume < .*:\d+ waits_for_the_broker < asyncio/locks.py:\d+ wait\b", line), line


def test_a_blocked_loop_still_shows_its_stack_on_sigusr2() -> None:
    """A loop stuck in a synchronous call runs no asyncio handler; faulthandler writes the stack from C instead."""
    code = (
        "import asyncio, sys\n"
        "from chassis.telemetry import install_dumps\n"
        "async def main():\n"
        "    install_dumps()\n"
        "    print('ready', flush=True)\n"
        "    sys.stdin.read()  # blocks the loop until the test closes stdin\n"
        "asyncio.run(main())\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    process.send_signal(signal.SIGUSR2)
    lines = [process.stdout.readline() for _ in range(3)]  # "Current thread …", then the innermost frame first
    output = process.communicate(timeout=10)[0].decode()
    # Line 6 (blocked in the read), or line 5 when the signal came as "ready" was still being written.
    assert re.search(rb'File "<string>", line [56] in main', b"".join(lines)), (lines, output)


def test_a_crash_in_c_code_leaves_the_stack_in_the_log() -> None:
    """A process that dies of SIGSEGV (a C extension's bug) says where, instead of vanishing from its log."""
    code = (
        "import asyncio, ctypes\n"
        "from chassis.telemetry import install_dumps\n"
        "async def main():\n"
        "    install_dumps()\n"
        "    ctypes.string_at(0)  # reads address 0\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=False)
    assert done.returncode == -signal.SIGSEGV
    assert b"Segmentation fault" in done.stderr and b'File "<string>", line 5 in main' in done.stderr, done.stderr
