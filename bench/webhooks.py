"""The partners service's webhook path without the broker: CPU per delivery, fan-out and sending apart.

``python -m bench.webhooks 600 3`` makes a fresh PostgreSQL database, migrates the partners service's tables, seeds
the demo directory, subscribes the VHS's and the Jobcenter's receivers (``tests/faults/harness.py``'s, in a process
of their own, as in ``make bench``) to sent referrals, then feeds 600 referral_sent records to the partners consumer's
batch handling (:class:`chassis.consumer.EventConsumer`, in fetches of 3: a newcomer's sent referrals, what it sees
at a few newcomers per second), each fetch followed by a round of the delivery loop (as the handlers' wake starts
one). Prints this process's CPU per delivery for the handlers (a delivery row per subscription) and for the
deliveries (claim, signed POST, record), and checks that every referral reached its receiver once. The CPU of the
receivers and of PostgreSQL is not counted. ``BENCH_POSTGRES_URL`` names the server (default the local one); the
database is dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from chassis.cloudevents import as_record
from chassis.consumer import EventConsumer
from chassis.db import make_engine, make_session_factory
from chassis.embedded_broker import free_port, wait_for_port
from chassis.migrations import upgrade_to_head
from chassis.outbox import Outbox
from chassis.uow import UnitOfWork
from contracts.referral import ReferralSent
from services.partners import app as partners_app
from services.partners import directory, domain, workflow
from services.partners.delivery import Deliverer, SecretBox
from services.partners.handlers import CONSUMED_TOPICS, make_handlers
from services.partners.models import WebhookDelivery, messaging
from services.partners.schemas import WebhookCreate

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PARTNERS = ("vhs-landsberg", "jobcenter-landsberg")
#: A receiver per partner, as the fault suite's harness runs them, in a process of its own (its CPU is not ours).
RECEIVERS = """
import sys, time
from tests.faults.harness import Receiver
receivers = []
for partner, port in zip(sys.argv[1::2], sys.argv[2::2]):
    receiver = Receiver(partner)
    receiver.port = int(port)
    receiver.up()
    receivers.append(receiver)
sys.stdin.read()  # until the bench closes it
print(sum(len(r.received) for r in receivers), len({d.webhook_id for r in receivers for d in r.received}))
"""


def referrals_sent(count: int) -> list[ReferralSent]:
    now = datetime.now(UTC)
    return [
        ReferralSent(
            referral_id=str(uuid.uuid4()),
            case_id=str(uuid.uuid4()),
            person_id=str(uuid.uuid4()),
            service_type="integration_course" if i % 3 else "job_placement",
            partner_id=PARTNERS[0] if i % 3 else PARTNERS[1],
            partner_category="adult_education" if i % 3 else "job_centre",
            at=now,
            purpose="course_enrolment" if i % 3 else "job_placement",
            response_due_at=now + timedelta(days=7),
        )
        for i in range(count)
    ]


async def run(count: int, fetch: int, ports: dict[str, int]) -> dict[str, float]:
    name = f"bench_webhooks_{os.getpid()}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES).set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    try:
        for port in ports.values():
            await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 30)
        return await measure(url, count, fetch, ports)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def measure(url: str, count: int, fetch: int, ports: dict[str, int]) -> dict[str, float]:
    migrations = Path(partners_app.__file__).parent / "migrations"
    await asyncio.to_thread(upgrade_to_head, migrations, url, "alembic_version_partners")
    settings = partners_app.PartnersSettings(database_url=url, environment="development")
    engine = make_engine(url)
    factory = make_session_factory(engine)

    def unit_of_work() -> UnitOfWork:
        return UnitOfWork(factory, Outbox(messaging.outbox), dead_letters=messaging.dead_letters)

    box = SecretBox("bench")
    now = datetime.now(UTC)
    async with unit_of_work() as uow:
        await workflow.seed_directory(uow, now, directory.LANDSBERG_DIRECTORY, directory.LANDSBERG_MEETING_OFFERS)
    for partner, port in ports.items():
        hook = WebhookCreate(url=f"http://127.0.0.1:{port}/webhooks/{partner}", event_types=[ReferralSent.event_type])
        async with unit_of_work() as uow:
            await workflow.create_webhook(uow, now, partner, hook, box, allow_private=True)
    deliverer = Deliverer(
        session_factory=factory,
        clock=lambda: datetime.now(UTC),
        secret_box=box,
        policy=domain.RetryPolicy(),
        allow_private=True,
        timeout_seconds=5,
        poll_seconds=1,
        claim_seconds=60,
    )
    consumer = EventConsumer(
        settings=settings,
        unit_of_work=unit_of_work,
        inbox=messaging.inbox,
        group_id="partners",
        handlers=make_handlers(lambda: datetime.now(UTC), deliverer.wake),
        topics=CONSUMED_TOPICS,
        dead_letters=messaging.dead_letters,
    )
    fed = [as_record(event, source="/services/referral", offset=i) for i, event in enumerate(referrals_sent(count))]
    handling = sending = 0.0
    started = time.monotonic()
    for start in range(0, count, fetch):
        cpu = time.process_time()
        async for _ in consumer._process_records(fed[start : start + fetch]):
            pass
        handling += time.process_time() - cpu
        cpu = time.process_time()
        while await deliverer.deliver_due() >= deliverer.batch_size:  # the round the handlers' wake starts
            pass
        sending += time.process_time() - cpu
    elapsed = time.monotonic() - started
    await deliverer.client.aclose()
    async with factory() as session:
        delivered = await session.scalar(
            select(func.count()).where(WebhookDelivery.status == domain.DeliveryStatus.DELIVERED.value)
        )
    await engine.dispose()
    assert consumer.handled_total == count and delivered == count, (consumer.handled_total, delivered, count)
    return {
        "handlers_cpu_ms_per_delivery": round(1000 * handling / count, 2),
        "deliveries_cpu_ms_per_delivery": round(1000 * sending / count, 2),
        "deliveries_per_second": round(count / elapsed, 1),
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    fetch = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ports = {partner: free_port() for partner in PARTNERS}
    args = [str(v) for pair in ports.items() for v in pair]
    receivers = subprocess.Popen(
        [sys.executable, "-c", RECEIVERS, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        result = asyncio.run(run(count, fetch, ports))
        received, ids = (int(n) for n in receivers.communicate("", timeout=30)[0].split())
    finally:
        with contextlib.suppress(OSError):
            receivers.kill()
        receivers.wait()
    assert received == ids == count, f"the receivers got {received} requests, {ids} webhook-ids, for {count}"
    print(json.dumps({"deliveries": count, "fetch": fetch, **result}))


if __name__ == "__main__":
    main()
