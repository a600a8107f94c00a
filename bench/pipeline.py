"""`make bench`: the whole platform measured, from a registration to its case and referrals, on this machine.

Every process of the ``Procfile`` runs as `make run` starts it (``tests/faults/harness.py``'s platform: `make run`'s
environment, free ports, one PostgreSQL database per service, the embedded broker). Measured, in this order:

1. sustained end-to-end throughput: newcomers at a rising steady rate, each registered, given two consents and a
   needs assessment through the gateway as a registrar would (4 calls); a rate holds when p99 of both latencies below
   is ≤ 1 s, every newcomer's case and referrals exist within ``DRAIN_S`` after the load ends (the consumers' lag
   stays bounded) and no call failed;
2. end-to-end latency at 10/s, 100/s and the sustained rate: registration 201 → the person's case exists, and needs
   assessment 201 → its four proposed referrals exist, seen in the referral service's database (what the gateway's
   case pages read), polled every 20 ms;
3. backlog replay: ``REPLAY_EVENTS`` person_registered events published while the monitoring and referral services
   are stopped, then each started alone and timed to its inbox holding them all, against a raw aiokafka consume of
   the same records (the consumer's ratio to the broker's speed);
4. gateway ingest: POST /api/v1/registrations through the gateway (wrk) against ``bench/bare.py``, a bare FastAPI
   app doing one insert of the same body into the same PostgreSQL server, and GET /healthz for scale;
5. outbox drain: the broker killed for ``OUTAGE_S`` while registrations go on at 100/s, then started again (empty);
   the time until every service's outbox has published everything;
6. resident memory of every process, the highest seen while the load ran.

Absolute figures depend on the machine and whatever else it runs; the ratios come from the same run. The load
generator is Python (httpx) for the paced phases and ``wrk`` for the ingest ratio when installed (else the Python
generator, which is then itself the limit; the table says which).
``BENCH_QUICK=1`` runs a short profile for development. Writes ``bench/results/<date>.json`` and ``.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import platform as host
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.engine import make_url

from bench import run as gateway_bench
from chassis.cloudevents import binary_headers
from chassis.embedded_broker import free_port, wait_for_port
from contracts.registration import PERSONS_TOPIC, PersonRegistered
from tests.conftest import REFERRAL_NEEDS, newcomer
from tests.faults.harness import CONSENTS, EXPECTED_REFERRALS, Load, Platform, Process, start_platform

ROOT = Path(__file__).resolve().parent.parent
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STEP_S = float(os.environ.get("BENCH_STEP_SECONDS", "8" if QUICK else "60"))
RATES = [
    float(r)
    for r in os.environ.get(
        "BENCH_RATES", "5,10,25,50,100,200,500" if QUICK else "5,10,20,30,50,75,100,150,200,300,500"
    ).split(",")
]
LATENCY_RATES = (10.0, 100.0)
#: How long a latency rate beyond the sustained one runs: long enough for p99, short enough to catch up after.
LATENCY_S = float(os.environ.get("BENCH_LATENCY_SECONDS", "4" if QUICK else "10"))
DRAIN_S = float(os.environ.get("BENCH_DRAIN_SECONDS", "10"))
#: How long to wait for the platform to catch up after a rate it could not hold, before the next phase.
CATCH_UP_S = float(os.environ.get("BENCH_CATCH_UP_SECONDS", "120" if QUICK else "600"))
REPLAY_EVENTS = int(os.environ.get("BENCH_REPLAY_EVENTS", "3000" if QUICK else "50000"))
REPLAY_SERVICES = ("monitoring", "referral")
#: The processes that only consume what registration publishes: paused for the ingest baseline's twin (phase 4).
DOWNSTREAM = ("referral", "monitoring", "partners", "courses")
WRK_S = float(os.environ.get("BENCH_SECONDS", "5" if QUICK else "15"))
OUTAGE_S = float(os.environ.get("BENCH_OUTAGE_SECONDS", "10" if QUICK else "300"))
OUTAGE_RATE = 100.0
#: Which phases run (all by default): rates, replay, ingest, outage.
PHASES = os.environ.get("BENCH_PHASES", "rates,replay,ingest,outage").split(",")
P99_LIMIT_MS = 1000.0
#: Newcomers under way at once at most (each a chain of 4 calls), and so connections to the gateway.
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", "64"))
#: Added to the results' file names (e.g. "before" and "after" of a change, run back to back).
LABEL = os.environ.get("BENCH_LABEL", "")


# --- the load, timed -----------------------------------------------------------------------------------------------


@dataclass
class TimedLoad(Load):
    """The fault suite's load, noting when each newcomer's registration and needs assessment were answered."""

    with_referrals: bool = True
    registered_at: dict[str, float] = field(default_factory=dict)
    assessed_at: dict[str, float] = field(default_factory=dict)

    async def run(self) -> None:
        """As the fault suite's, but with at most ``IN_FLIGHT`` newcomers under way: httpx's pool spends its time
        (the load generator's, on this machine's CPU) sorting hundreds of waiting requests otherwise. A newcomer
        that has to wait starts late, and the rate is then not held (the load takes longer than planned)."""
        self.started_at = time.monotonic()
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        gate = asyncio.Semaphore(IN_FLIGHT)
        async with httpx.AsyncClient(base_url=self.gateway, timeout=15, limits=limits) as client:

            async def one() -> None:
                async with gate:
                    await self.newcomer(client)

            tasks = []
            for i in range(self.count):
                delay = self.started_at + i / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
        self.ended_at = time.monotonic()

    async def newcomer(self, client: httpx.AsyncClient) -> None:
        reply = await self.call(client, "/api/v1/registrations", newcomer(), self.registrar)
        if reply is None or reply.status_code != 201:
            return
        person: str = reply.json()["person_id"]
        self.registered.append(person)
        self.registered_at[person] = time.monotonic()
        if not self.with_referrals:
            return
        for consent in CONSENTS:
            if await self.call(client, f"/api/v1/persons/{person}/consents", consent, self.registrar) is None:
                return
        if await self.call(client, f"/api/v1/persons/{person}/needs-assessments", REFERRAL_NEEDS, self.admin):
            self.assessed.append(person)
            self.assessed_at[person] = time.monotonic()


@dataclass
class Watch:
    """Polls the referral service's database for the load's cases and complete sets of referrals."""

    load: TimedLoad
    #: Rows of a query (``$1`` parameters) on the referral service's database.
    fetch: Callable[..., Awaitable[list[Any]]]
    case_seen: dict[str, float] = field(default_factory=dict)
    referrals_seen: dict[str, float] = field(default_factory=dict)

    def pending(self) -> tuple[list[str], list[str]]:
        return (
            [p for p in self.load.registered_at if p not in self.case_seen],
            [p for p in self.load.assessed_at if p not in self.referrals_seen],
        )

    async def poll(self) -> None:
        cases, referrals = self.pending()
        if cases:
            rows = await self.fetch(f"SELECT DISTINCT person_id FROM cases WHERE person_id IN ({marks(cases)})", *cases)
            now = time.monotonic()  # visible at the latest when the answer came
            self.case_seen.update((r["person_id"], now) for r in rows)
        if referrals:
            services = sorted(EXPECTED_REFERRALS)
            rows = await self.fetch(
                f"SELECT person_id FROM referrals WHERE person_id IN ({marks(referrals)}) "
                f"AND service_type IN ({marks(services, len(referrals))}) "
                f"GROUP BY person_id HAVING count(DISTINCT service_type) = ${len(referrals) + len(services) + 1}",
                *referrals,
                *services,
                len(services),
            )
            now = time.monotonic()
            self.referrals_seen.update((r["person_id"], now) for r in rows)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()
            await asyncio.sleep(0.02)

    async def until_complete(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            await self.poll()
            if not any(self.pending()):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)

    def latencies(self) -> dict[str, Any]:
        case = [self.case_seen[p] - t for p, t in self.load.registered_at.items() if p in self.case_seen]
        referrals = [self.referrals_seen[p] - t for p, t in self.load.assessed_at.items() if p in self.referrals_seen]
        return {"case": percentiles(case), "referrals": percentiles(referrals)}


def failure_kinds(failures: list[str]) -> dict[str, int]:
    """How many calls failed, by call and answer (``POST /api/v1/registrations: 422``, or the client's error): the
    load keeps the first words of each failure (``tests.faults.harness.Load``), the bench counts them by kind."""
    kinds = Counter(
        re.sub(
            r"^(POST \S+: (?:still )?\S+).*$",
            r"\1",
            re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "{id}", f),
            flags=re.S,
        )
        for f in failures
    )
    return dict(kinds.most_common())


def marks(values: list[Any], before: int = 0) -> str:
    """``$n`` placeholders for ``values`` after ``before`` others: an IN list both databases take."""
    return ", ".join(f"${before + i}" for i in range(1, len(values) + 1))


def percentiles(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
    }


# --- memory ----------------------------------------------------------------------------------------------------


def pids(platform: Platform) -> dict[str, int]:
    found = {n: p.popen.pid for n, p in platform.processes.items() if p.popen is not None and p.popen.poll() is None}
    if platform.broker.process is not None:
        found["broker"] = platform.broker.process.pid
    return found


@dataclass
class Memory:
    """The highest resident memory seen per process, sampled every half second while a load runs."""

    platform: Platform
    peak_mb: dict[str, float] = field(default_factory=dict)

    def sample(self) -> None:
        for name, pid in pids(self.platform).items():
            with contextlib.suppress(OSError):
                self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), gateway_bench.rss_mb(pid))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def cpu_now(platform: Platform) -> dict[str, float]:
    found = {}
    for name, pid in pids(platform).items():
        with contextlib.suppress(OSError):
            found[name] = gateway_bench.cpu_seconds(pid)
    return found


def cpu_per_newcomer(platform: Platform, before: dict[str, float], newcomers: int) -> dict[str, float]:
    """CPU time each process spent per newcomer since ``before``: the cost of the work, which a busy machine (shared
    cores) lengthens less than the latencies."""
    after = cpu_now(platform)
    return {name: round(1000 * (after[name] - before[name]) / max(1, newcomers), 1) for name in after if name in before}


# --- 1, 2: rates ---------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def referral_reader(platform: Platform) -> AsyncIterator[Callable[..., Awaitable[list[Any]]]]:
    """Queries on the referral service's database: one connection held on PostgreSQL (polled every 20 ms)."""
    if platform.postgres is None:
        yield functools.partial(platform.query, "referral")
        return
    url = make_url(platform.postgres).set(database=platform.databases["referral"])
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        yield connection.fetch
    finally:
        await connection.close()


async def fresh_tokens(platform: Platform) -> None:
    """Sign in again: a run outlasts the access tokens' lifetime, and an expired token's 401s are no measure."""
    for user in ("registrar", "admin"):
        platform.tokens[user] = await platform.sign_in(user)


async def at_rate(platform: Platform, memory: Memory, rate: float, seconds: float) -> dict[str, Any]:
    """Newcomers at ``rate`` for ``seconds``; their latencies and whether the platform held the rate."""
    await fresh_tokens(platform)
    load = TimedLoad(
        platform.gateway,
        platform.tokens["registrar"],
        platform.tokens["admin"],
        rate=rate,
        count=max(1, int(rate * seconds)),
    )
    stop = asyncio.Event()
    cpu_before = cpu_now(platform)
    async with referral_reader(platform) as fetch:
        watch = Watch(load, fetch)
        background = [asyncio.create_task(watch.run(stop)), asyncio.create_task(memory.run(stop))]
        await load.start().wait()
        stop.set()
        await asyncio.gather(*background)
        load_s = load.ended_at - load.started_at
        complete = await watch.until_complete(DRAIN_S)
        cpu = cpu_per_newcomer(platform, cpu_before, load.count)
        latencies = watch.latencies()
        held = (
            complete
            and not load.failures
            and load_s <= seconds + DRAIN_S
            and all(latencies[k].get("p99_ms", 0) <= P99_LIMIT_MS for k in latencies)
        )
        result = {
            "rate": rate,
            "seconds": seconds,
            "newcomers": load.count,
            "load_seconds": round(load_s, 1),
            "failures": len(load.failures),
            "failure_kinds": failure_kinds(load.failures),
            "complete_within_drain": complete,
            "held": held,
            "cpu_ms_per_newcomer": cpu,
            **latencies,
        }
        print(
            f"  {rate:6.0f}/s for {seconds:.0f} s: case p50 {latencies['case'].get('p50_ms')} "
            f"p99 {latencies['case'].get('p99_ms')} ms, referrals p50 {latencies['referrals'].get('p50_ms')} "
            f"p99 {latencies['referrals'].get('p99_ms')} ms, load took {load_s:.1f} s, "
            f"{len(load.failures)} failures, {'held' if held else 'NOT held'}"
        )
        print(
            f"    CPU per newcomer (ms, load and drain): {sum(cpu.values()):.0f}: "
            + ", ".join(f"{name} {ms:.0f}" for name, ms in cpu.items())
        )
        if not complete:
            caught_up = await watch.until_complete(CATCH_UP_S)
            print(f"    caught up with the backlog: {caught_up}")
        return result


async def rates(platform: Platform, memory: Memory) -> dict[str, Any]:
    print("\n1-2. sustained rate and end-to-end latency (newcomers/s, 4 calls each)")
    # Warm up: connections, the topics' first events, the consumer groups' first fetches (not measured).
    await at_rate(platform, memory, 5, 4)
    steps: list[dict[str, Any]] = []
    for rate in RATES:
        steps.append(await at_rate(platform, memory, rate, STEP_S))
        if not steps[-1]["held"]:
            break
    held = [s for s in steps if s["held"]]
    sustained = held[-1]["rate"] if held else 0.0
    latency = {f"{s['rate']:g}": s for s in steps}
    for rate in LATENCY_RATES:
        if f"{rate:g}" not in latency:
            latency[f"{rate:g}"] = await at_rate(platform, memory, rate, LATENCY_S)
    return {"steps": steps, "sustained_per_second": sustained, "latency": latency}


# --- 3: backlog replay -----------------------------------------------------------------------------------------


async def template_event(bootstrap: str) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """A person_registered record of the run, as registration's outbox published it; when the run registered
    nobody (``BENCH_PHASES=replay``), one made here the same way."""
    consumer = AIOKafkaConsumer(
        PERSONS_TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    headers = list(record.headers)
                    if dict(headers).get("ce_type") == PersonRegistered.event_type.encode():
                        return json.loads(record.value), headers
    finally:
        await consumer.stop()
    person = str(uuid.uuid4())
    event = PersonRegistered(
        person_id=person,
        household_id=person,
        age_band="27-44",
        gender="female",
        nationality="TR",
        languages=["tr", "de"],
        preferred_language="tr",
        residence_status_group="skilled_worker_or_study_visa",
        district="Altstadt",
        registered_on=datetime.now(UTC).date(),
    )
    headers = binary_headers(
        event_id=str(uuid.uuid4()),
        event_type=event.event_type,
        source="/services/registration",
        subject=person,
        time=datetime.now(UTC),
    )
    return event.model_dump(mode="json"), headers


async def backlog(
    platform: Platform, data: dict[str, Any], headers: list[tuple[str, bytes]]
) -> dict[TopicPartition, int]:
    """Stop the replaying services and publish ``REPLAY_EVENTS`` new people's person_registered events (copies of
    ``data`` with new ids) on the persons topic; returns each partition's end offset before them."""
    bootstrap = platform.broker.bootstrap_servers
    for service in REPLAY_SERVICES:
        platform.processes[service].stop()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        partitions = [TopicPartition(PERSONS_TOPIC, p) for p in sorted(await producer.partitions_for(PERSONS_TOPIC))]
        probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await probe.start()
        try:
            starts = dict(await probe.end_offsets(partitions))
        finally:
            await probe.stop()
        sent = []
        for _ in range(REPLAY_EVENTS):
            person = str(uuid.uuid4())
            event_headers = [
                (k, str(uuid.uuid4()).encode() if k == "ce_id" else person.encode() if k == "ce_subject" else v)
                for k, v in headers
            ]
            value = json.dumps(data | {"person_id": person, "household_id": person}).encode()
            sent.append(await producer.send(PERSONS_TOPIC, value, key=person.encode(), headers=event_headers))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return starts


async def raw_consume(bootstrap: str, starts: dict[TopicPartition, int]) -> float:
    """The broker's speed: the backlog's records read by a plain aiokafka consumer as fast as it goes (events/s)."""
    raw = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await raw.start()
    try:
        raw.assign(list(starts))
        for tp, offset in starts.items():
            raw.seek(tp, offset)
        seen = 0
        started = time.monotonic()
        while seen < REPLAY_EVENTS:
            for records in (await raw.getmany(timeout_ms=1000, max_records=10000)).values():
                seen += len(records)
        return REPLAY_EVENTS / (time.monotonic() - started)
    finally:
        await raw.stop()


async def replay(platform: Platform) -> dict[str, Any]:
    """Each replaying service twice on a backlog of its own: one transaction per event (batch size 1, as before
    batching) and with the default batches, so that both figures come from the same run."""
    print(f"\n3. backlog replay: {REPLAY_EVENTS} person_registered events")
    data, headers = await template_event(platform.broker.bootstrap_servers)
    result: dict[str, Any] = {"events": REPLAY_EVENTS}
    for mode, batch_size in (("one_by_one", "1"), ("batched", None)):
        starts = await backlog(platform, data, headers)
        raw_rate = await raw_consume(platform.broker.bootstrap_servers, starts)
        print(f"  {mode}: raw aiokafka consume {raw_rate:8.0f} events/s")
        result.setdefault("raw_aiokafka_per_second", round(raw_rate))
        for service in REPLAY_SERVICES:
            process = platform.processes[service]
            setting = f"{service.upper()}_KAFKA_CONSUMER_BATCH_SIZE"
            env = {k: v for k, v in process.env.items() if k != setting}
            if batch_size is not None:
                env[setting] = batch_size
            process.env = env
            result.setdefault(service, {})[mode] = await replay_one(platform, process, raw_rate)
    return result


async def replay_one(platform: Platform, process: Process, raw_rate: float) -> dict[str, Any]:
    before = await platform.handled(process.name)
    process.start()
    started = time.monotonic()
    first = 0.0
    timeout = max(600.0, REPLAY_EVENTS / 5)
    while True:
        handled = await platform.handled(process.name) - before
        now = time.monotonic()
        if handled and not first:
            first = now
        if handled >= REPLAY_EVENTS:
            break
        if now - started > timeout:
            print(f"  {process.name}: only {handled} of {REPLAY_EVENTS} after {timeout:.0f} s")
            break
        await asyncio.sleep(0.2)
    handling_s = max(now - first, 1e-3)
    per_second = handled / handling_s
    print(
        f"    {process.name:<11} {per_second:8.0f} events/s = {per_second / raw_rate:.4f} of raw "
        f"({handled} in {handling_s:.1f} s, {first - started:.1f} s from start to first)"
    )
    return {
        "per_second": round(per_second, 1),
        "ratio_to_raw": round(per_second / raw_rate, 4),
        "handled": handled,
        "seconds": round(handling_s, 1),
        "start_to_first_s": round(first - started, 1),
    }


# --- 4: ingest -------------------------------------------------------------------------------------------------


async def ingest(platform: Platform, workdir: Path) -> dict[str, Any]:
    print(f"\n4. ingest: {WRK_S:.0f} s each, {gateway_bench.CONCURRENCY} connections")
    gateway_bench.SECONDS = WRK_S
    if platform.postgres is None:
        print("  ! skipped on SQLite: the bare baseline (bench/bare.py) inserts into PostgreSQL")
        return {"skipped": "the bare baseline runs on PostgreSQL only"}
    if not shutil.which("wrk"):
        print("  ! wrk is not installed (apt-get install wrk): skipped; the Python load generator would be the limit")
        return {"skipped": "wrk is not installed"}
    await fresh_tokens(platform)
    port = free_port()
    env = dict(platform.env, BARE_DATABASE_URL=platform.env["REGISTRATION_DATABASE_URL"])
    bare = Process(
        "bare",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench.bare:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        port,
        platform.directory / "logs" / "bare.log",
    )
    bare.start()
    try:
        wait_for_port(port, timeout_s=60)
        named = gateway_bench.body() | {"given_names": "Bench BENCHNAME"}
        run = gateway_bench.wrk
        health = await asyncio.to_thread(
            run, "gateway GET /healthz", f"{platform.gateway}/healthz", headers={}, body=None, workdir=workdir
        )
        baseline = await asyncio.to_thread(
            run,
            "bare FastAPI + insert",
            f"http://127.0.0.1:{port}/registrations",
            headers={},
            body=named,
            workdir=workdir,
        )

        async def post(name: str) -> dict[str, Any]:
            before = cpu_now(platform)
            measured = await asyncio.to_thread(
                run,
                name,
                f"{platform.gateway}/api/v1/registrations",
                headers=platform.tokens["registrar"],
                body=named,
                workdir=workdir,
            )
            measured["ok_per_second"] = measured["per_second"] - measured["errors"] / WRK_S
            measured["cpu_ms_per_registration"] = cpu_per_newcomer(
                platform, before, int(measured["ok_per_second"] * WRK_S)
            )
            return measured

        gateway = await post("gateway POST registrations")
        # The same with the consumers of what registration publishes stopped (SIGSTOP) for the run: the bare
        # baseline has no downstream work beside it, and on 2 cores the cases, referrals and statistics the
        # registrations cause take half the CPU. They catch up once continued.
        downstream = [popen for name in DOWNSTREAM if (popen := platform.processes[name].popen) is not None]
        for popen in downstream:
            popen.send_signal(signal.SIGSTOP)
        try:
            alone = await post("  the same, consumers paused")
        finally:
            for popen in downstream:
                popen.send_signal(signal.SIGCONT)
    finally:
        bare.stop()
    baseline["ok_per_second"] = baseline["per_second"] - baseline["errors"] / WRK_S  # only answers that did the work
    ratio = gateway["ok_per_second"] / baseline["ok_per_second"]
    ratio_alone = alone["ok_per_second"] / baseline["ok_per_second"]
    print(f"  gateway + registration = {ratio:.3f} of the bare FastAPI + insert ({ratio_alone:.3f} consumers paused)")
    return {
        "healthz": health,
        "bare_insert": baseline,
        "gateway_registrations": gateway,
        "ratio": round(ratio, 3),
        "gateway_registrations_consumers_paused": alone,
        "ratio_consumers_paused": round(ratio_alone, 3),
    }


# --- 5: outbox drain -------------------------------------------------------------------------------------------


async def unpublished(platform: Platform) -> dict[str, int]:
    counts = {}
    for service in platform.databases:
        rows = await platform.query(service, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
        counts[service] = int(rows[0]["n"])
    return counts


async def outage(platform: Platform, memory: Memory) -> dict[str, Any]:
    print(f"\n5. outbox drain: broker away for {OUTAGE_S:.0f} s, registrations at {OUTAGE_RATE:.0f}/s")
    await fresh_tokens(platform)
    platform.broker.kill()
    load = TimedLoad(
        platform.gateway,
        platform.tokens["registrar"],
        platform.tokens["admin"],
        rate=OUTAGE_RATE,
        count=int(OUTAGE_RATE * OUTAGE_S),
        with_referrals=False,
    )
    stop = asyncio.Event()
    sampler = asyncio.create_task(memory.run(stop))
    await load.start().wait()
    stop.set()
    await sampler
    backlog = await unpublished(platform)
    print(
        f"  {len(load.registered)} registered in {load.ended_at - load.started_at:.1f} s "
        f"({len(load.failures)} failures{': ' if load.failures else ''}{failure_kinds(load.failures) or ''}); "
        f"unpublished: {backlog}"
    )
    platform.broker.start()
    started = time.monotonic()
    drained: dict[str, float] = {}
    while len(drained) < len(backlog) and time.monotonic() - started < 600:
        for service, n in (await unpublished(platform)).items():
            if n == 0 and service not in drained:
                drained[service] = round(time.monotonic() - started, 2)
        await asyncio.sleep(0.1)
    print(f"  drained after the broker's return (s): {drained}")
    return {
        "outage_s": OUTAGE_S,
        "rate": OUTAGE_RATE,
        "registered": len(load.registered),
        "failures": len(load.failures),
        "failure_kinds": failure_kinds(load.failures),
        "backlog": backlog,
        "drained_s": drained,
        "registration_drain_s": drained.get("registration"),
    }


# --- the machine and the table ---------------------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return host.processor() or "unknown"


async def postgres_version() -> str:
    connection = await asyncpg.connect(POSTGRES, timeout=3)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    database = m.get("database") or f"PostgreSQL {m['postgresql']}"  # results written before SQLite was measured
    lines = [
        f"Measured {result['date']} ({'quick' if result['quick'] else 'full'} profile) on {m['cores']} cores "
        f"({m['cpu']}), {database}, load from {m['load_generator']}, on the same machine.",
        "",
        "| what | measured | target |",
        "| --- | --- | --- |",
    ]
    if "rates" in result:
        rates = result["rates"]
        lines.append(
            f"| sustained end to end (newcomers/s; p99 ≤ 1 s, complete within {DRAIN_S:g} s) | "
            f"{rates['sustained_per_second']:g} | ≥ 500 |"
        )
        for rate, step in rates["latency"].items():
            case, ref = step["case"], step["referrals"]
            lines.append(
                f"| latency at {rate}/s: registration → case, p50 / p99 | {case.get('p50_ms')} / "
                f"{case.get('p99_ms')} ms | p99 ≤ 250 ms at 100/s |"
            )
            lines.append(
                f"| latency at {rate}/s: needs assessment → 4 referrals, p50 / p99 | {ref.get('p50_ms')} / "
                f"{ref.get('p99_ms')} ms{'' if step['held'] else ' (rate not held)'} | |"
            )
    if "replay" in result:
        replayed = result["replay"]
        lines.append(
            f"| raw aiokafka consume of {replayed['events']} events | {replayed['raw_aiokafka_per_second']}/s | |"
        )
        for service in REPLAY_SERVICES:
            for mode, words in (("one_by_one", "one transaction per event"), ("batched", "batches")):
                r = replayed[service][mode]
                lines.append(
                    f"| {service} consumer replaying the backlog, {words} | {r['per_second']}/s = "
                    f"{r['ratio_to_raw']} x raw | ≥ 0.3 x raw |"
                )
    if "ingest" in result:
        ing = result["ingest"]
        if "ratio" in ing:
            lines.append(f"| gateway GET /healthz (scale) | {ing['healthz']['per_second']:.0f}/s | |")
            lines.append(
                f"| bare FastAPI + insert | {ing['bare_insert']['ok_per_second']:.0f}/s, p99 "
                f"{ing['bare_insert']['p99_ms']:.0f} ms | |"
            )
            posted = ing["gateway_registrations"]
            lines.append(
                f"| gateway + registration POST | {posted['ok_per_second']:.0f}/s, p99 "
                f"{posted['p99_ms']:.0f} ms = {ing['ratio']} x bare | ≥ 0.5 x bare |"
            )
            alone = ing.get("gateway_registrations_consumers_paused")
            if alone:
                cpu = alone["cpu_ms_per_registration"]
                lines.append(
                    f"| the same, the consumers paused | {alone['ok_per_second']:.0f}/s, p99 {alone['p99_ms']:.0f} ms"
                    f" = {ing['ratio_consumers_paused']} x bare; CPU per registration: gateway "
                    f"{cpu.get('gateway')} ms, registration {cpu.get('registration')} ms, broker {cpu.get('broker')} ms"
                    " | ≥ 0.5 x bare |"
                )
    if "outage" in result:
        out = result["outage"]
        lines.append(
            f"| outbox drain after {out['outage_s']:g} s broker outage at {out['rate']:g}/s "
            f"({out['backlog'].get('registration')} events) | {out['registration_drain_s']} s "
            f"(all services: {max(out['drained_s'].values(), default=None)} s) "
            "| ≤ 30 s for 5 min |"
        )
    memory = ", ".join(f"{n} {mb:.0f}" for n, mb in sorted(result["memory_peak_mb"].items()))
    lines.append(f"| resident memory, peak under load (MB) | {memory} | ≤ 150 each |")
    return "\n".join(lines)


async def database() -> tuple[str | None, str]:
    """PostgreSQL when it answers at ``BENCH_POSTGRES_URL`` (its URL and version), else SQLite files, as `make run`
    starts the services without it (``BENCH_DATABASE=sqlite`` asks for SQLite)."""
    if os.environ.get("BENCH_DATABASE", "").lower() == "sqlite":
        return None, f"SQLite {sqlite3.sqlite_version}"
    try:
        return POSTGRES, f"PostgreSQL {await postgres_version()}"
    except (OSError, asyncpg.PostgresError) as exc:
        print(
            f"bench: no PostgreSQL answers at {POSTGRES} (BENCH_POSTGRES_URL; {exc}): measuring on SQLite files, as "
            "`make run` runs without it (one writer per service: consumers do not batch, and phase 4 is skipped)"
        )
        return None, f"SQLite {sqlite3.sqlite_version}"


async def main() -> None:
    postgres, version = await database()
    (ROOT / "var").mkdir(exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / "var"))
    print(f"bench ({'quick' if QUICK else 'full'} profile): starting the platform in {directory}")
    platform = await start_platform(directory, postgres, webhook_backoff_s=5)
    memory = Memory(platform)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": QUICK,
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "database": version,
            "load_generator": "Python httpx (paced phases), wrk (ingest)"
            if shutil.which("wrk") and postgres is not None
            else "Python httpx",
        },
    }
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M") + ("-quick" if QUICK else "") + (f"-{LABEL}" if LABEL else "")
    result["machine"]["load_average_at_start"] = round(os.getloadavg()[0], 1)  # a shared machine: how busy
    try:
        # The JSON after every phase, so that a run cut short keeps what it measured.
        if "rates" in PHASES:
            result["rates"] = await rates(platform, memory)
        (results / f"{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
        if "replay" in PHASES:
            result["replay"] = await replay(platform)
        (results / f"{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
        if "ingest" in PHASES:
            result["ingest"] = await ingest(platform, directory)
        (results / f"{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
        if "outage" in PHASES:
            result["outage"] = await outage(platform, memory)
        memory.sample()
        result["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 1)
        result["memory_peak_mb"] = {n: round(mb, 1) for n, mb in memory.peak_mb.items()}
    except BaseException:
        print(platform.tails())
        raise
    finally:
        await platform.stop()
    markdown = table(result)
    print("\n" + markdown)
    (results / f"{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / f"{stamp}.md").write_text(markdown + "\n")
    print(f"\nwritten: bench/results/{stamp}.json and .md")


if __name__ == "__main__":
    asyncio.run(main())
