"""`make bench`: registrations through the gateway, event latency and memory, on this machine.

For each database (SQLite, as `make run`; then PostgreSQL, as in production, in a throw-away
database when the server at BENCH_POSTGRES_URL answers) it starts the embedded broker, the
registration service and the gateway, then measures for a fixed time with a fixed concurrency:
- baseline: GET /healthz on the gateway (no auth, no upstream): what this machine's HTTP stack gives;
- registrations: POST /api/v1/registrations through the gateway (auth, upstream, database, outbox),
  with the CPU time each process spent per registration (where the time goes);
- event latency: from each event's ce_time (set at commit) to its arrival at a plain consumer;
- resident memory of each process afterwards.
The load generator runs on the same machine, so absolute numbers understate the services; the
ratio against the baseline measured in the same run is what to compare between runs.
BENCH_DATABASES=sqlite (or postgresql) runs one of them only.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from chassis.embedded_broker import EmbeddedBroker, free_port, wait_for_port
from chassis.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASES = [d for d in os.environ.get("BENCH_DATABASES", "sqlite,postgresql").split(",") if d]


def body() -> dict[str, Any]:
    return {
        "given_names": f"Bench {uuid.uuid4().hex[:10]}",
        "family_name": "Test",
        "birth_date": "1990-01-01",
        "gender": "female",
        "nationality": "SY",
        "languages": ["ar"],
        "preferred_language": "ar",
        "residence_status_group": "other",
        "address": {"street": "Katharinenstraße", "house_number": "1", "postal_code": "86899", "district": "Altstadt"},
    }


async def load(
    client: httpx.AsyncClient, method: str, url: str, make_body: Any, headers: dict[str, str]
) -> list[float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + SECONDS

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            started = time.monotonic()
            reply = await client.request(method, url, json=make_body() if make_body else None, headers=headers)
            if reply.status_code >= 400:
                errors += 1
            latencies.append(time.monotonic() - started)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    if errors:
        print(f"  ! {errors} error answers on {method} {url}")
    return latencies


WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format(BODY, tostring(math.random(1, 1e9)) .. "-" .. counter)
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d\\n", summary.requests, summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(name: str, url: str, *, headers: dict[str, str], body: dict[str, Any] | None, workdir: Path) -> dict[str, Any]:
    """Load from wrk (C, one thread): the Python client would be the bottleneck, not the service."""
    script = workdir / f"load-{len(list(workdir.glob('*.lua')))}.lua"
    # A prefix per run: wrk's random numbers repeat from run to run, and a repeated name is a 409 duplicate.
    prefix = uuid.uuid4().hex[:8]
    template = json.dumps(body).replace("%", "%%").replace("BENCHNAME", prefix + "%s") if body else None
    lua = WRK_SCRIPT.replace("BODY", json.dumps(template) if template else '""')
    if body is None:
        lua = lua.replace("return wrk.format(nil, nil, nil, body)", "return wrk.format(nil, nil, nil, nil)")
    else:
        lua = 'wrk.method = "POST"\n' + lua
    script.write_text(lua)
    args = ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{int(SECONDS)}s", "-s", str(script), "--latency", url]
    for key, value in {**headers, **({"Content-Type": "application/json"} if body else {})}.items():
        args += ["-H", f"{key}: {value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    requests, errors, p50, p99 = (int(x) for x in line.split()[1:])
    result = {"per_second": requests / SECONDS, "p50_ms": p50 / 1000, "p99_ms": p99 / 1000, "errors": errors}
    summary_line(name, result)
    if errors:
        print(f"    ({errors} error answers)")
    return result


def summary_line(name: str, result: dict[str, float]) -> None:
    print(
        f"  {name:<28} {result['per_second']:8.0f}/s   p50 {result['p50_ms']:6.1f} ms   p99 {result['p99_ms']:6.1f} ms"
    )


def summary(name: str, latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    result = {
        "per_second": len(ordered) / SECONDS,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
    }
    print(
        f"  {name:<28} {result['per_second']:8.0f}/s   p50 {result['p50_ms']:6.1f} ms   p99 {result['p99_ms']:6.1f} ms"
    )
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def postgres_database() -> str | None:
    """A new, empty database on the PostgreSQL server, or None when there is none to reach."""
    try:
        admin = await asyncpg.connect(POSTGRES, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    name = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES, timeout=3)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def main() -> None:
    results: dict[str, Any] = {}
    for database in DATABASES:
        if database == "sqlite":
            results[database] = await run(database, None)
        elif database == "postgresql":
            name = await postgres_database()
            if name is None:
                print(f"\nbench on postgresql: no server answers at {POSTGRES} (BENCH_POSTGRES_URL); skipped")
                continue
            try:
                results[database] = await run(database, name)
            finally:
                await drop_postgres_database(name)
        else:
            raise SystemExit(f"unknown database {database!r} in BENCH_DATABASES (sqlite, postgresql)")
    summary_lines = [
        f"  {db:<11} {r['ratio']:.3f} of the baseline ({r['registrations']['per_second']:.0f}/s, "
        f"p99 {r['registrations']['p99_ms']:.0f} ms)"
        for db, r in results.items()
    ]
    print("\nregistrations through the gateway against the same run's GET /healthz:\n" + "\n".join(summary_lines))
    (ROOT / "var" / "bench-last.json").write_text(
        json.dumps({"seconds": SECONDS, "concurrency": CONCURRENCY, "cores": os.cpu_count(), **results}, indent=2)
    )


async def run(database: str, postgres_name: str | None) -> dict[str, Any]:
    var = ROOT / "var" / f"bench-{uuid.uuid4().hex[:6]}"
    var.mkdir(parents=True)
    ports = {"gateway": free_port(), "registration": free_port()}
    if postgres_name is not None:
        database_url = str(httpx.URL(POSTGRES).copy_with(path=f"/{postgres_name}"))
    else:
        database_url = f"sqlite:///{var / 'registration.db'}"
    with EmbeddedBroker(log_path=var / "broker.log") as broker:
        # Development with demo data: the gateway makes the demo registrar whose password is read below.
        env = dict(
            os.environ,
            ENVIRONMENT="development",
            DEMO_DATA="true",
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            LOG_LEVEL="WARNING",
            REGISTRATION_DATABASE_URL=database_url,
            GATEWAY_REGISTRATION_URL=f"http://127.0.0.1:{ports['registration']}",
            GATEWAY_LOCAL_USERS_FILE=str(var / "users.json"),
            GATEWAY_RATE_LIMIT_PER_MINUTE_USER="10000000",
        )
        processes = {
            name: subprocess.Popen(  # noqa: ASYNC220 - started once, before any measuring
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    factory,
                    "--port",
                    str(ports[name]),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
            )
            for name, factory in (
                ("registration", "services.registration.app:create_app"),
                ("gateway", "gateway.app:create_app"),
            )
        }
        try:
            for port in ports.values():
                wait_for_port(port, timeout_s=60)
            gateway = f"http://127.0.0.1:{ports['gateway']}"
            await asyncio.sleep(1)
            lines = (var / "users.credentials.txt").read_text().splitlines()
            password = dict(line.split(" ", 1) for line in lines)
            async with httpx.AsyncClient(
                base_url=gateway, timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY)
            ) as client:
                token = (
                    await client.post("/auth/token", json={"username": "registrar", "password": password["registrar"]})
                ).json()
                auth = {"Authorization": f"Bearer {token['access_token']}"}
                for _ in range(20):  # warm up: connections, caches, the first events' topics
                    await client.post("/api/v1/registrations", json=body(), headers=auth)
                print(f"\nbench on {database}: {SECONDS:.0f} s each, {CONCURRENCY} connections, {os.cpu_count()} cores")
                pids = {name: process.pid for name, process in processes.items()}
                if shutil.which("wrk"):
                    baseline = await asyncio.to_thread(
                        wrk, "baseline GET /healthz", f"{gateway}/healthz", headers={}, body=None, workdir=var
                    )
                    named = body() | {"given_names": "Bench BENCHNAME"}
                    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    registrations = await asyncio.to_thread(
                        wrk,
                        "POST /api/v1/registrations",
                        f"{gateway}/api/v1/registrations",
                        headers=auth,
                        body=named,
                        workdir=var,
                    )
                else:
                    print("  ! wrk is not installed (apt-get install wrk): the Python load generator below is")
                    print("    itself the bottleneck, so these figures say little about the services.")
                    baseline = summary("baseline GET /healthz", await load(client, "GET", "/healthz", None, {}))
                    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    registrations = summary(
                        "POST /api/v1/registrations", await load(client, "POST", "/api/v1/registrations", body, auth)
                    )
                count = max(registrations["per_second"] * SECONDS, 1)
                cpu_ms = {name: 1000 * (cpu_seconds(pid) - before[name]) / count for name, pid in pids.items()}
                cpu_per_request: dict[str, Any] = {"cpu_ms_per_request": cpu_ms}
                print("    CPU per registration: " + ", ".join(f"{n} {ms:.2f} ms" for n, ms in cpu_ms.items()))
            # Fetching as the services' consumers do (chassis.consumer, kafka_fetch_max_wait_ms by default).
            fetch_max_wait_ms = ServiceSettings.model_fields["kafka_fetch_max_wait_ms"].default
            consumer = AIOKafkaConsumer(
                "registration.persons.v1",
                bootstrap_servers=broker.bootstrap_servers,
                auto_offset_reset="earliest",
                group_id=None,
                fetch_max_wait_ms=fetch_max_wait_ms,
            )
            # Latency from commit (ce_time) to a consumer, for events produced while we listen.
            await consumer.start()
            await consumer.getmany(timeout_ms=2000)
            await consumer.seek_to_end()
            lags: list[float] = []
            async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:

                async def produce() -> None:
                    for _ in range(200):
                        await client.post("/api/v1/registrations", json=body(), headers=auth)
                        await asyncio.sleep(0.01)

                task = asyncio.create_task(produce())
                while not task.done() or len(lags) < 200:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            sent = datetime.fromisoformat(
                                dict(record.headers)["ce_time"].decode().replace("Z", "+00:00")
                            )
                            lags.append((datetime.now(UTC) - sent).total_seconds())
                    if task.done() and not lags:
                        break
            await consumer.stop()
            events = summary("event commit -> consumer", lags) if lags else {}
            memory = {name: rss_mb(p.pid) for name, p in processes.items()}
            print("  resident memory: " + ", ".join(f"{n} {m:.0f} MB" for n, m in memory.items()))
            ratio = registrations["per_second"] / baseline["per_second"]
            print(f"  registrations reach {ratio:.3f} of the baseline's request rate")
            return {
                "baseline": baseline,
                "registrations": registrations | cpu_per_request,
                "events": events,
                "memory_mb": memory,
                "ratio": ratio,
            }
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
