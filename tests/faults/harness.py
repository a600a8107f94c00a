"""The platform as `make run` starts it, on test ports and PostgreSQL, with the means to hurt it and to count.

Every process of the ``Procfile`` is started with its own command and the environment of ``scripts/run.py`` (the
same ``environment()`` and ``connect()``), but one by one, so that a test can kill one with SIGKILL and start it
again: free ports, a fresh PostgreSQL database per service and the embedded broker on a port of its own. The
differences from `make run`, each for a reason, are in ``PLATFORM_DEVIATIONS``.

A :class:`Load` registers newcomers through the gateway at a steady rate as a registrar would (each with two consents
and, as an admin, a needs assessment, so that referrals go to two partners), retrying a failed call with the same
``Idempotency-Key`` the way a client must. Two :class:`Receiver` threads are the partners' webhook endpoints.
:meth:`Platform.observe` counts what the databases, the receivers and the broker's ``.dlq`` topics hold about the
load's people, and :meth:`Observation.problems` says what differs from "exactly once".
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from honcho.environ import parse_procfile
from sqlalchemy.engine import make_url

from chassis.cloudevents import binary_headers, encode_data
from chassis.embedded_broker import EmbeddedBroker, free_port
from scripts import run
from tests.conftest import REFERRAL_NEEDS, newcomer

ROOT = Path(__file__).resolve().parents[2]
#: The order in which the kill test goes through the processes (the broker has a test of its own).
PROCESSES = ("registration", "referral", "courses", "partners", "monitoring", "gateway")
CONSUMERS = ("registration", "referral", "courses", "partners", "monitoring")
VHS, JOBCENTER = "vhs-landsberg", "jobcenter-landsberg"
REFERRAL_SENT = "de.landsberg.integration.referral.referral_sent.v1"
#: The consents every newcomer of the load gives: the VHS's courses and the Jobcenter's placement.
CONSENTS = (
    {"partner_category": "adult_education", "purpose": "course_enrolment"},
    {"partner_id": JOBCENTER, "purpose": "job_placement"},
)
#: What the routing rules propose for a woman with REFERRAL_NEEDS (tests/service/test_referral_flow.py): the first
#: three are sent (a consent covers them), the IHK's waits with "consent missing".
EXPECTED_REFERRALS = frozenset(
    {"integration_course", "course_with_childcare", "job_placement", "qualification_recognition"}
)
#: What differs from `make run`, and why; printed with the summary.
PLATFORM_DEVIATIONS = {
    "ports": "free ports of this machine instead of 8000-8005 and 9092",
    "databases": "one fresh PostgreSQL database per service instead of SQLite files under var/",
    "GATEWAY_RATE_LIMIT_PER_MINUTE_USER": "raised: the load is one registrar at 3 calls per newcomer, beyond 600/min",
    "files": "the gateway's users and token key, the courses' pass key in the run's temporary directory, not var/",
    "PARTNERS_WEBHOOK_BACKOFF_INITIAL_SECONDS": "the receiver's outage / 12 (5 s for the minute of `make faults`)",
}
READY_SECONDS = 90.0


# --- processes -------------------------------------------------------------------------------------------------


@dataclass
class Process:
    """One process of the Procfile, started as honcho would start it, but killable on its own."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> None:
        with self.log.open("ab") as log:
            log.write(f"\n--- started {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            # The Procfile's own command; a new session so that a test's Ctrl-C does not reach it.
            self.popen = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started_at = time.monotonic()

    def kill(self) -> None:
        """kill -9: no lifespan shutdown, no drain, no offset commit, no outbox flush."""
        assert self.popen is not None and self.popen.poll() is None, f"{self.name} is not running"
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def where_it_waits(self) -> str:
        """Whether it runs and, from its own dump (SIGUSR1, chassis.telemetry), where its consumer and relay wait."""
        if self.popen is None or self.popen.poll() is not None:
            return f"{self.name}: not running (exit code {self.popen and self.popen.returncode})"
        before = self.log.stat().st_size
        self.popen.send_signal(signal.SIGUSR1)
        deadline, dump = time.monotonic() + 2, ""
        while "tasks, each with the awaits" not in dump and time.monotonic() < deadline:
            time.sleep(0.1)  # an error path: the platform is stuck anyway
            with self.log.open("rb") as log:
                log.seek(before)
                dump = log.read().decode(errors="replace")
        if "tasks, each with the awaits" not in dump:
            self.popen.send_signal(signal.SIGUSR2)  # the threads' stacks, written by faulthandler from C
            time.sleep(0.5)
            with self.log.open("rb") as log:
                log.seek(before)
                stacks = log.read().decode(errors="replace").strip()
            return f"{self.name}: running, no task dump within 2 s (its event loop is blocked):\n{stacks}"
        waits = [line for line in dump.splitlines() if re.match(r"[\w.-]+-(consumer|outbox-relay)(-[\w.-]+)?: ", line)]
        return "\n".join([f"{self.name}: running", *(f"  {line}" for line in waits)])

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:] if self.log.exists() else []
        return f"--- {self.name} ({self.log}):\n" + "\n".join(text)

    async def wait_ready(self, timeout_s: float = READY_SECONDS) -> float:
        """Poll ``/readyz`` until it answers 200; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                assert self.popen is not None
                if self.popen.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.popen.returncode}\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return time.monotonic()
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not ready within {timeout_s:.0f}s\n{self.tail()}")
                await asyncio.sleep(0.05)


def expand(command: str, env: dict[str, str]) -> list[str]:
    """The Procfile line as the shell honcho runs it would see it (only ``${NAME:-default}`` is used there)."""
    return shlex.split(re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m[1], m[2]), command))


# --- the partners' webhook receivers ---------------------------------------------------------------------------


@dataclass
class Delivery:
    webhook_id: str
    event_id: str
    referral_id: str


class Receiver:
    """A partner's webhook endpoint in a thread: answers 200 and keeps what came. ``down()`` closes the listening
    socket (connections are refused, as for a receiver that is down); ``up()`` listens on the same port again."""

    def __init__(self, partner_id: str) -> None:
        self.partner_id = partner_id
        self.received: list[Delivery] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/{self.partner_id}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                data = json.loads(body).get("data", {})
                with receiver.lock:
                    receiver.received.append(
                        Delivery(
                            self.headers.get("webhook-id", ""),
                            str(json.loads(body).get("id")),
                            str(data.get("referral_id")),
                        )
                    )
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            assert self.thread is not None
            self.thread.join(5)
            self.server = None

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.received)


# --- the load --------------------------------------------------------------------------------------------------


@dataclass
class Load:
    """Newcomers registered through the gateway at ``rate`` per second, ``count`` of them; every call retried with its
    ``Idempotency-Key`` while the platform is away (a connection refused, 5xx, 429), for up to ``patience_s``."""

    gateway: str
    registrar: dict[str, str]
    admin: dict[str, str]
    rate: float
    count: int
    patience_s: float = 90.0
    #: Person ids whose registration was answered 201 (a replay of the first answer included) or recognised.
    registered: list[str] = field(default_factory=list)
    #: Person ids whose consents and needs assessment were answered 201: their referrals are expected.
    assessed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    #: Registrations answered with a duplicate warning for the newcomer's own first try (see ``newcomer``).
    recognised: int = 0
    #: Calls answered "carried out, answer lost" (their service died between its commit and keeping the answer).
    lost: int = 0
    started_at: float = 0.0
    _retried: set[str] = field(default_factory=set)
    ended_at: float = 0.0
    _task: asyncio.Task[None] | None = None

    def start(self) -> Load:
        self._task = asyncio.create_task(self.run())
        return self

    async def wait(self) -> Load:
        assert self._task is not None
        await self._task
        return self

    async def until_registered(self, count: int, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.registered) < count:
            assert self._task is not None
            if self._task.done():
                await self._task
                return
            assert time.monotonic() < deadline, f"only {len(self.registered)} of {count} registered in {timeout_s}s"
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        self.started_at = time.monotonic()
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=self.gateway, timeout=15, limits=limits) as client:
            tasks = []
            for i in range(self.count):
                # A steady rate: each newcomer starts on schedule, whatever the earlier ones still wait for.
                delay = self.started_at + i / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.newcomer(client)))
            await asyncio.gather(*tasks)
        self.ended_at = time.monotonic()

    async def newcomer(self, client: httpx.AsyncClient) -> None:
        reply = await self.call(client, "/api/v1/registrations", newcomer(), self.registrar)
        if reply is None:
            return
        if reply.status_code == 201:
            person: str = reply.json()["person_id"]
        else:
            # The duplicate warning for our own registration: its first try was done when the service died before
            # it kept the answer ("response lost"), and it was sent again under a new key. The name is unique to this
            # newcomer, so the person named is ours, as a registrar would recognise them.
            (existing,) = reply.json()["existing_persons"]
            person = existing["person_id"]
            self.recognised += 1
        self.registered.append(person)
        for consent in CONSENTS:
            if await self.call(client, f"/api/v1/persons/{person}/consents", consent, self.registrar) is None:
                return
        if await self.call(client, f"/api/v1/persons/{person}/needs-assessments", REFERRAL_NEEDS, self.admin):
            self.assessed.append(person)

    def retried(self, headers: dict[str, str]) -> bool:
        return headers["Idempotency-Key"] in self._retried

    async def call(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any], auth: dict[str, str]
    ) -> httpx.Response | None:
        headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + self.patience_s
        pause = 0.1
        while True:
            what: str
            try:
                reply = await client.post(path, json=body, headers=headers)
                if reply.status_code == 201:
                    return reply
                if reply.status_code == 409 and "possible-duplicate" in reply.text and self.retried(headers):
                    return reply
                what = f"{reply.status_code} {reply.text[:200]}"
                if reply.status_code == 409 and "idempotency-response-lost" in reply.text:
                    # The first try was carried out, its answer lost with a killed service: nothing was done twice.
                    # A consent or an assessment is there; a registration's person the registrar finds by sending it
                    # again, which the duplicate warning answers with the person (recognised above).
                    self.lost += 1
                    if path != "/api/v1/registrations":
                        return reply
                    headers["Idempotency-Key"] = str(uuid.uuid4())
                    self._retried.add(headers["Idempotency-Key"])
                    continue
                # The first try with this key may still hold it (or have died with a killed service, until its
                # lease is over): a 409 "in flight" says come again, as 429 and 5xx do.
                in_flight = reply.status_code == 409 and "idempotency-request-in-flight" in reply.text
                if reply.status_code not in (429, 500, 502, 503, 504) and not in_flight:
                    self.failures.append(f"POST {path}: {what}")
                    return None
            except httpx.HTTPError as exc:
                what = type(exc).__name__
            if time.monotonic() > deadline:
                self.failures.append(f"POST {path}: still {what} after {self.patience_s:.0f}s")
                return None
            self.retries += 1
            self._retried.add(headers["Idempotency-Key"])
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)


# --- counting --------------------------------------------------------------------------------------------------


@dataclass
class Observation:
    """What the platform holds about the load's people at one moment."""

    registered: int  # 201 answers
    persons: int  # in registration's database
    cases: Counter[str]  # person -> cases
    referrals: Counter[tuple[str, str]]  # (person, service type) -> referrals
    sent: dict[str, str]  # referral -> partner, the referrals sent to a partner with a webhook
    webhooks: Counter[str]  # referral -> deliveries answered 200 at its partner's receiver
    webhook_ids: Counter[str]  # referral -> distinct webhook-ids that reached the receiver
    monitored: int  # persons in monitoring's read model
    all_sent: list[str]  # every referral of the load sent to a partner (with a webhook or not)
    monitored_sent: Counter[str]  # referral -> 'sent' facts in monitoring's read model
    dead_letters: list[dict[str, str]]  # records on the .dlq topics since the baseline
    expected_people: list[str]
    expected_assessed: list[str]

    def pending(self) -> list[str]:
        """What has not arrived yet (empty: converged)."""
        left = []
        if self.persons < len(self.expected_people):
            left.append(f"persons {self.persons}/{len(self.expected_people)}")
        if missing := [p for p in self.expected_people if self.cases[p] == 0]:
            left.append(f"{len(missing)} persons without a case")
        short = [p for p in self.expected_assessed if sum(self.referrals[(p, s)] for s in EXPECTED_REFERRALS) < 4]
        if short:
            left.append(f"{len(short)} persons short of their referrals")
        if undelivered := [r for r in self.sent if self.webhooks[r] == 0]:
            left.append(f"{len(undelivered)} webhooks not delivered")
        if self.monitored < len(self.expected_people):
            left.append(f"monitoring {self.monitored}/{len(self.expected_people)}")
        if uncounted := [r for r in self.all_sent if self.monitored_sent[r] == 0]:
            left.append(f"monitoring has not counted {len(uncounted)} sent referrals")
        return left

    def problems(self, expected_dead_letters: frozenset[str] | set[str] = frozenset()) -> list[str]:
        """What differs from "exactly once"; ``expected_dead_letters`` are the ce_ids that should be in a DLQ."""
        found = self.pending()
        if self.persons != self.registered:
            found.append(f"{self.registered} registrations answered 201 but {self.persons} persons")
        if more := {p: n for p, n in self.cases.items() if n > 1}:
            found.append(f"persons with more than one case: {more}")
        for person in self.expected_assessed:
            got = {s for (p, s), n in self.referrals.items() if p == person and n}
            if got != EXPECTED_REFERRALS or any(self.referrals[(person, s)] != 1 for s in got):
                found.append(f"person {person}: referrals {dict((s, self.referrals[(person, s)]) for s in got)}")
        if twice := {r: n for r, n in self.webhooks.items() if n > 1}:
            found.append(f"webhooks delivered more than once: {len(twice)} referrals, e.g. {list(twice.items())[:3]}")
        if ids := {r: n for r, n in self.webhook_ids.items() if n > 1}:
            found.append(f"referrals that reached a partner as several webhooks (webhook-ids): {len(ids)}")
        unexpected = [d for d in self.dead_letters if d["ce_id"] not in expected_dead_letters]
        if unexpected:
            found.append(f"{len(unexpected)} dead letters that should not be there, e.g. {unexpected[:3]}")
        if self.monitored != len(self.expected_people):
            found.append(f"monitoring counts {self.monitored} of {len(self.expected_people)} persons")
        if twice := {r: n for r, n in self.monitored_sent.items() if n > 1}:
            found.append(f"monitoring counts referrals sent more than once: {len(twice)}, e.g. {list(twice)[:3]}")
        return found


@dataclass
class Platform:
    directory: Path
    postgres: str | None  # None: each service on a SQLite file in the directory, as `make run` without PostgreSQL
    broker: EmbeddedBroker
    processes: dict[str, Process]
    databases: dict[str, str]  # service -> database name
    receivers: dict[str, Receiver]
    env: dict[str, str]
    credentials: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The .dlq topics' records counted already (a baseline per test).
    dlq_seen: set[tuple[str, int, int]] = field(default_factory=set)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.processes['gateway'].port}"

    def tails(self) -> str:
        """Where each process waits, then the end of each one's log."""
        waits = [p.where_it_waits() for p in self.processes.values()]
        return "\n".join(["--- where each process waits:", *waits, *(p.tail() for p in self.processes.values())])

    # --- starting ---

    async def start(self) -> None:
        self.broker.start()
        for receiver in self.receivers.values():
            receiver.up()
        for process in self.processes.values():
            process.start()
        await asyncio.gather(*(p.wait_ready() for p in self.processes.values()))
        await self.wait_for_accounts()
        for user in ("registrar", "admin", "vhs-partner", "jobcenter"):
            self.tokens[user] = await self.sign_in(user)
        await self.open_the_partners()

    async def wait_for_accounts(self) -> None:
        # The gateway writes the demo accounts' passwords next to its users file when it makes them.
        credentials = Path(self.env["GATEWAY_LOCAL_USERS_FILE"]).with_suffix(".credentials.txt")
        text = credentials.read_text()
        self.credentials = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)

    async def sign_in(self, user: str) -> dict[str, str]:
        async with httpx.AsyncClient(base_url=self.gateway, timeout=30) as client:
            reply = await client.post("/auth/token", json={"username": user, "password": self.credentials[user]})
            assert reply.status_code == 200, reply.text
            return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    async def open_the_partners(self) -> None:
        """The VHS and the Jobcenter subscribe their receivers to sent referrals, and the VHS lifts its limit of free
        places (the demo directory's 40 and 10 would block the load's later referrals with "no capacity")."""
        async with httpx.AsyncClient(base_url=self.gateway, timeout=30) as client:
            for partner, user in ((VHS, "vhs-partner"), (JOBCENTER, "jobcenter")):
                reply = await client.post(
                    f"/api/v1/partners/{partner}/webhooks",
                    headers=self.tokens[user],
                    json={"url": self.receivers[partner].url, "event_types": [REFERRAL_SENT]},
                )
                assert reply.status_code == 201, reply.text
            for service in ("integration_course", "course_with_childcare"):
                reply = await client.put(
                    f"/api/v1/partners/{VHS}/services/{service}/capacity",
                    headers=self.tokens["vhs-partner"],
                    json={"free_places": None},
                )
                assert reply.status_code == 200, reply.text

        async def referral_knows() -> bool:
            rows = await self.query("referral", "SELECT free_places FROM partner_offers WHERE partner_id = $1", VHS)
            return bool(rows) and all(r["free_places"] is None for r in rows)

        await until(referral_knows, 60, "referral learns the VHS's unlimited places")

    async def stop(self) -> None:
        for name in ("gateway", *CONSUMERS):
            self.processes[name].stop()
        self.broker.stop()
        for receiver in self.receivers.values():
            receiver.down()
        if self.postgres is None:
            return  # the SQLite files go with the directory
        admin = await asyncpg.connect(self.postgres)
        try:
            for name in self.databases.values():
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    # --- faults ---

    async def restart(self, name: str) -> tuple[float, float]:
        """Start a killed process again; returns (when it was started, when it answered ready)."""
        process = self.processes[name]
        process.start()
        return process.started_at, await process.wait_ready()

    async def database_away(self, service: str) -> None:
        """Refuse new connections to the service's database and end the ones it has, the server staying up."""
        admin = await asyncpg.connect(self.postgres)
        try:
            name = self.databases[service]
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()

    async def database_back(self, service: str) -> None:
        admin = await asyncpg.connect(self.postgres)
        try:
            await admin.execute(f'ALTER DATABASE "{self.databases[service]}" ALLOW_CONNECTIONS true')
        finally:
            await admin.close()

    # --- counting ---

    async def query(self, service: str, sql: str, *args: Any) -> list[Any]:
        """Rows of ``sql`` (``$1``-style parameters) on the service's database; on SQLite, rows by column name too."""
        if self.postgres is None:
            return await asyncio.to_thread(sqlite_rows, self.databases[service], sql, args)
        url = make_url(self.postgres).set(database=self.databases[service]).render_as_string(hide_password=False)
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def handled(self, service: str) -> int:
        """Events the service's consumer has handled (its inbox)."""
        rows = await self.query(service, "SELECT count(*) AS n FROM inbox")
        return int(rows[0]["n"])

    async def dead_letters(self) -> list[dict[str, str]]:
        """The records on every ``.dlq`` topic that were not there at the last baseline."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        found: list[dict[str, str]] = []
        try:
            topics = sorted(t for t in await consumer.topics() if t.endswith(".dlq"))
            if not topics:
                return []
            consumer.subscribe(topics)
            quiet = 0
            while quiet < 3:  # three empty polls in a row: read to the end
                batches = await consumer.getmany(timeout_ms=300)
                quiet = 0 if batches else quiet + 1
                for records in batches.values():
                    for r in records:
                        if (r.topic, r.partition, r.offset) in self.dlq_seen:
                            continue
                        headers = {k: v.decode(errors="replace") for k, v in r.headers}
                        found.append(
                            {
                                "topic": r.topic,
                                "partition": str(r.partition),
                                "offset": str(r.offset),
                                "ce_id": headers.get("ce_id", ""),
                                "group": headers.get("dlq_consumer_group", ""),
                                "error": headers.get("dlq_error", ""),
                            }
                        )
        finally:
            await consumer.stop()
        return found

    async def baseline(self) -> None:
        """From now on count only new dead letters."""
        for d in await self.dead_letters():
            self.dlq_seen.add((d["topic"], int(d["partition"]), int(d["offset"])))

    async def observe(self, load: Load, *, with_dead_letters: bool = True) -> Observation:
        people, assessed = list(load.registered), list(load.assessed)
        persons = await self.query("registration", "SELECT count(*) AS n FROM persons WHERE id = ANY($1)", people)
        cases = await self.query(
            "referral", "SELECT person_id, count(*) AS n FROM cases WHERE person_id = ANY($1) GROUP BY 1", people
        )
        referrals = await self.query(
            "referral",
            "SELECT id, person_id, service_type, partner_id, sent_at FROM referrals WHERE person_id = ANY($1)",
            assessed,
        )
        monitored = await self.query(
            "monitoring", "SELECT count(*) AS n FROM persons WHERE person_id = ANY($1)", people
        )
        sent = {
            r["id"]: r["partner_id"]
            for r in referrals
            if r["sent_at"] is not None and r["partner_id"] in self.receivers
        }
        all_sent = [r["id"] for r in referrals if r["sent_at"] is not None]
        monitored_sent = await self.query(
            "monitoring",
            "SELECT referral_id, count(*) AS n FROM referral_facts WHERE kind = 'sent' "
            "AND referral_id = ANY($1) GROUP BY 1",
            all_sent,
        )
        webhooks: Counter[str] = Counter()
        webhook_ids: dict[str, set[str]] = {}
        for receiver in self.receivers.values():
            for delivery in receiver.snapshot():
                if delivery.referral_id in sent:
                    webhooks[delivery.referral_id] += 1
                    webhook_ids.setdefault(delivery.referral_id, set()).add(delivery.webhook_id)
        return Observation(
            registered=len(people),
            persons=int(persons[0]["n"]),
            cases=Counter({r["person_id"]: int(r["n"]) for r in cases}),
            referrals=Counter((r["person_id"], r["service_type"]) for r in referrals),
            sent=sent,
            webhooks=webhooks,
            webhook_ids=Counter({r: len(ids) for r, ids in webhook_ids.items()}),
            monitored=int(monitored[0]["n"]),
            all_sent=all_sent,
            monitored_sent=Counter({r["referral_id"]: int(r["n"]) for r in monitored_sent}),
            dead_letters=await self.dead_letters() if with_dead_letters else [],
            expected_people=people,
            expected_assessed=assessed,
        )

    async def converge(self, load: Load, timeout_s: float) -> tuple[Observation, float]:
        """Wait until nothing is pending; returns the observation and how long it took."""
        started = time.monotonic()
        last: list[str] = []
        while True:
            seen = await self.observe(load, with_dead_letters=False)
            pending = seen.pending()
            if pending != last:
                print(f"  {time.monotonic() - started:5.1f}s pending: {pending}")
                last = pending
            if not pending:
                return await self.observe(load), time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"not converged within {timeout_s:.0f}s: {seen.pending()}\n{self.tails()}")
            await asyncio.sleep(0.25)


async def until(check: Any, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f}s"
        await asyncio.sleep(interval_s)


async def group_offsets(platform: Platform, name: str) -> dict[TopicPartition, int]:
    """The offsets the service's consumer group has committed, over every partition of the topics it consumes."""
    topics = importlib.import_module(f"services.{name}.app").CONSUMED_TOPICS
    producer = AIOKafkaProducer(bootstrap_servers=platform.broker.bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.broker.bootstrap_servers)
    await producer.start()
    await admin.start()
    try:
        # The broker answers the group's offsets only for partitions named (not "all of them").
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(await producer.partitions_for(t))]
        committed = await admin.list_consumer_group_offsets(name, partitions=partitions)
        return {tp: c.offset for tp, c in committed.items()}
    finally:
        await admin.close()
        await producer.stop()


async def resumed(
    platform: Platform, name: str, since: float, before: dict[TopicPartition, int], timeout_s: float = 30.0
) -> float:
    """Seconds from ``since`` until the restarted service's consumer group commits an offset beyond ``before`` (its
    offsets while it was away).

    A probe, a CloudEvent of a type no service handles, is published on a topic the service consumes, so that
    there is something to read even when the load's next event would reach this service only through the others;
    the first commit of any partition (a backlog's first records, or the probe) is the consumer's resumption."""
    topics = importlib.import_module(f"services.{name}.app").CONSUMED_TOPICS
    bootstrap = platform.broker.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await producer.start()
    await admin.start()
    try:
        partitions = list(before)
        probe_id = f"probe-{uuid.uuid4()}"
        headers = binary_headers(
            event_id=probe_id,
            event_type="landsberg.test.resume-probe.v1",
            source="/tests/faults",
            subject=probe_id,
            time=datetime.now(UTC),
        )
        await producer.send_and_wait(topics[0], encode_data({}), key=probe_id.encode(), headers=headers)
        deadline = time.monotonic() + timeout_s
        while True:
            committed = await admin.list_consumer_group_offsets(name, partitions=partitions)
            if any(c.offset > before.get(tp, -1) for tp, c in committed.items()):
                return time.monotonic() - since
            assert time.monotonic() < deadline, f"{name} read nothing within {timeout_s:.0f}s of its restart"
            await asyncio.sleep(0.02)
    finally:
        await admin.close()
        await producer.stop()


def sqlite_rows(path: str, sql: str, args: tuple[Any, ...]) -> list[Any]:
    """``sql`` with asyncpg's ``$1`` parameters on a SQLite file (``?1``: numbered the same)."""
    connection = sqlite3.connect(path, timeout=30)
    try:
        connection.row_factory = sqlite3.Row
        return connection.execute(re.sub(r"\$(\d+)", r"?\1", sql), args).fetchall()
    finally:
        connection.close()


def platform_environment(
    directory: Path, bootstrap: str, databases: dict[str, str], postgres: str | None, webhook_backoff_s: float
) -> tuple[dict[str, str], dict[str, int]]:
    """`make run`'s environment (``scripts.run``), on free ports, PostgreSQL (or SQLite files: ``postgres`` None)
    and the test's broker."""
    saved = dict(os.environ)
    try:
        # Settings of the outer test run must not leak into the platform: it is configured here alone.
        for name in [k for k in os.environ if k.endswith(("_DATABASE_URL", "_PORT")) or k.startswith("KAFKA_")]:
            del os.environ[name]
        env = run.environment()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    ports = {name: free_port() for name in run.SERVICE_PORTS}
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    run.connect(env, ports)
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    for service, database in databases.items():
        if postgres is None:
            url = f"sqlite+aiosqlite:///{database}"
        else:
            on = make_url(postgres).set(drivername="postgresql", database=database)
            url = on.render_as_string(hide_password=False)
        env[f"{service.upper()}_DATABASE_URL"] = url
    env["GATEWAY_LOCAL_USERS_FILE"] = str(directory / "gateway-users.json")
    env["COURSES_DEV_SIGNING_KEY_FILE"] = str(directory / "pass-signing.key")
    env["GATEWAY_RATE_LIMIT_PER_MINUTE_USER"] = "100000"
    env["PARTNERS_WEBHOOK_BACKOFF_INITIAL_SECONDS"] = str(webhook_backoff_s)
    return env, ports


async def start_platform(directory: Path, postgres: str | None, webhook_backoff_s: float) -> Platform:
    """The platform as `make run` starts it: one PostgreSQL database per service on ``postgres``, or with None one
    SQLite file per service in ``directory`` (`make run`'s default)."""
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if postgres is None:
        databases = {name: str(directory / f"{name}.db") for name in CONSUMERS}
    else:
        suffix = uuid.uuid4().hex[:8]
        databases = {name: f"faults_{name}_{suffix}" for name in CONSUMERS}
        admin = await asyncpg.connect(postgres)
        try:
            for name in databases.values():
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
    broker = EmbeddedBroker(log_path=logs / "broker.log")
    env, ports = platform_environment(directory, broker.bootstrap_servers, databases, postgres, webhook_backoff_s)
    commands = parse_procfile((ROOT / "Procfile").read_text()).processes
    processes = {
        name: Process(name, expand(commands[name], env), env, ports[name], logs / f"{name}.log") for name in PROCESSES
    }
    receivers = {VHS: Receiver(VHS), JOBCENTER: Receiver(JOBCENTER)}
    platform = Platform(directory, postgres, broker, processes, databases, receivers, env)
    try:
        await platform.start()
    except BaseException:
        await platform.stop()
        raise
    return platform
