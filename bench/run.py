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

On PostgreSQL (with wrk) it also measures ``bench/bare.py`` on the same database: issue 16's ratio, gateway +
registration against a bare FastAPI route doing one insert, and the CPU per registration of the database backends
serving each (the server's share, which the services' own CPU does not show). Knobs:
- ``BENCH_CODE_ROOTS=/a/checkout,/b/checkout``: start the services from these checkouts in turn (their own code,
  this harness), ``BENCH_ROUNDS`` times, alternating: before and after a change in the same run;
- ``BENCH_IDEMPOTENCY_KEYS=1``: every registration carries its own ``Idempotency-Key``, as a retrying client's does;
- ``BENCH_PROFILE=dir``: py-spy (when installed next to this Python) records both services during the
  registrations, as collapsed stacks in ``dir``;
- ``BENCH_BARE=0``: without the bare baseline.
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
CODE_ROOTS = [Path(r) for r in os.environ.get("BENCH_CODE_ROOTS", "").split(",") if r] or [ROOT]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
IDEMPOTENCY_KEYS = os.environ.get("BENCH_IDEMPOTENCY_KEYS", "") not in ("", "0")
PROFILE = os.environ.get("BENCH_PROFILE")
BARE = os.environ.get("BENCH_BARE", "1") not in ("", "0")


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
-- wrk.format's headers replace wrk.headers (-H): a request's own key goes into a copy of them.
keyed = function(unique)
  if KEY_PREFIX == nil then return nil end
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = KEY_PREFIX .. unique
  return headers
end
request = function()
  counter = counter + 1
  local unique = tostring(math.random(1, 1e9)) .. "-" .. counter
  local body = string.format(BODY, unique)
  return wrk.format(nil, nil, keyed(unique), body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d\\n", summary.requests, summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk(
    name: str,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any] | None,
    workdir: Path,
    idempotency_keys: bool = False,
) -> dict[str, Any]:
    """Load from wrk (C, one thread): the Python client would be the bottleneck, not the service. With
    ``idempotency_keys`` each request has an ``Idempotency-Key`` of its own."""
    script = workdir / f"load-{len(list(workdir.glob('*.lua')))}.lua"
    # A prefix per run: wrk's random numbers repeat from run to run, and a repeated name is a 409 duplicate.
    prefix = uuid.uuid4().hex[:8]
    template = json.dumps(body).replace("%", "%%").replace("BENCHNAME", prefix + "%s") if body else None
    lua = WRK_SCRIPT.replace("BODY", json.dumps(template) if template else '""')
    lua = lua.replace("KEY_PREFIX", json.dumps(f"{prefix}-") if idempotency_keys else "nil", 2)
    if body is None:
        lua = lua.replace("wrk.format(nil, nil, keyed(unique), body)", "wrk.format(nil, nil, nil, nil)")
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


def backend_cpu_seconds(database: str) -> dict[int, float]:
    """CPU time so far of each PostgreSQL backend serving ``database`` (their process titles name it), by pid."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres: ") and f" {database} " in title:
                found[int(entry.name)] = cpu_seconds(int(entry.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


async def sessions_opened(database: str | None) -> int:
    """How many connections the server has accepted to ``database`` so far (a pool that closes and opens connections
    under load costs a backend's start each time)."""
    if database is None:
        return 0
    admin = await asyncpg.connect(POSTGRES, timeout=3)
    try:
        return int(await admin.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", database) or 0)
    finally:
        await admin.close()


def ended_backends_cpu_seconds() -> float:
    """CPU time of the PostgreSQL server's processes that have ended so far (the postmaster's reaped children: a
    connection's backend that a pool closed). Every database's, not only the one measured: on a shared machine an
    upper bound of this benchmark's share."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[0].endswith(b"bin/postgres"):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return 0.0


def machine_busy() -> tuple[int, int]:
    """All cores' jiffies so far: (total, idle + iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]


class Meter:
    """CPU per request of the named processes and of the database's backends over one load phase, and how busy the
    whole machine was (other work on a shared machine shows there)."""

    def __init__(self, pids: dict[str, int], database: str | None) -> None:
        self.pids = pids
        self.database = database
        self.before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.backends = backend_cpu_seconds(database) if database else {}
        self.ended = ended_backends_cpu_seconds()
        self.machine = machine_busy()

    def per_request(self, count: float) -> dict[str, float]:
        count = max(count, 1)
        cpu_ms = {name: 1000 * (cpu_seconds(pid) - self.before[name]) / count for name, pid in self.pids.items()}
        if self.database:
            after = backend_cpu_seconds(self.database)
            spent = sum(t - self.backends.get(pid, 0.0) for pid, t in after.items())
            cpu_ms["postgres backends"] = 1000 * spent / count
            cpu_ms["ended backends (any database)"] = 1000 * (ended_backends_cpu_seconds() - self.ended) / count
        total, idle = machine_busy()
        cpu_ms["machine busy %"] = 100 * (1 - (idle - self.machine[1]) / max(total - self.machine[0], 1))
        return cpu_ms


def cpu_line(cpu_ms: dict[str, float]) -> str:
    return ", ".join(f"{n} {v:.0f}" if n.endswith("%") else f"{n} {v:.2f} ms" for n, v in cpu_ms.items())


def profiled(pids: dict[str, int], label: str) -> list[subprocess.Popen[bytes]]:
    """py-spy recording each process for the load phase (BENCH_PROFILE), as collapsed stacks."""
    spy = Path(sys.executable).parent / "py-spy"
    if not PROFILE or not spy.exists():
        return []
    Path(PROFILE).mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                *(str(spy), "record", "--pid", str(pid), "--duration", str(max(int(SECONDS) - 1, 1))),
                *(
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "-o",
                    str(Path(PROFILE) / f"{label}-{name}.txt"),
                ),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


async def main() -> None:
    results: dict[str, Any] = {}
    for database in DATABASES:
        for round_ in range(ROUNDS):
            for code in CODE_ROOTS:
                label = database if len(CODE_ROOTS) == ROUNDS == 1 else f"{database} {code.name} #{round_ + 1}"
                if database == "sqlite":
                    results[label] = await run(database, None, code)
                elif database == "postgresql":
                    name = await postgres_database()
                    if name is None:
                        print(f"\nbench on postgresql: no server answers at {POSTGRES} (BENCH_POSTGRES_URL); skipped")
                        break
                    try:
                        results[label] = await run(database, name, code)
                    finally:
                        await drop_postgres_database(name)
                else:
                    raise SystemExit(f"unknown database {database!r} in BENCH_DATABASES (sqlite, postgresql)")
    summary_lines = []
    for label, r in results.items():
        line = (
            f"  {label:<11} {r['ratio']:.3f} of the baseline ({r['registrations']['per_second']:.0f}/s, "
            f"p99 {r['registrations']['p99_ms']:.0f} ms)"
        )
        if "ratio_to_bare" in r:
            line += f", {r['ratio_to_bare']:.3f} of the bare insert ({r['bare']['per_second']:.0f}/s)"
        summary_lines.append(line)
    print("\nregistrations through the gateway against the same run's GET /healthz:\n" + "\n".join(summary_lines))
    (ROOT / "var" / "bench-last.json").write_text(
        json.dumps({"seconds": SECONDS, "concurrency": CONCURRENCY, "cores": os.cpu_count(), **results}, indent=2)
    )


async def bare_insert(database_url: str, workdir: Path, postgres_name: str) -> dict[str, Any]:
    """bench/bare.py on the same database under the same load: the leanest code doing the same insert."""
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before its load
        [
            *(sys.executable, "-m", "uvicorn", "--factory", "bench.bare:create_app", "--port", str(port)),
            *("--no-access-log", "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=dict(os.environ, BARE_DATABASE_URL=database_url),
    )
    try:
        wait_for_port(port, timeout_s=60)
        named = body() | {"given_names": "Bench BENCHNAME"}
        meter = Meter({"bare": process.pid}, postgres_name)
        result = await asyncio.to_thread(
            wrk,
            "bare FastAPI + insert",
            f"http://127.0.0.1:{port}/registrations",
            headers={},
            body=named,
            workdir=workdir,
        )
        result["cpu_ms_per_request"] = cpu_ms = meter.per_request(result["per_second"] * SECONDS)
        print("    CPU per request: " + cpu_line(cpu_ms))
        return result
    finally:
        process.terminate()
        process.wait(10)


async def run(database: str, postgres_name: str | None, code: Path = ROOT) -> dict[str, Any]:
    """One measurement of the services as the checkout ``code`` has them."""
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
                cwd=code,  # its own code first on the path: `-m` puts the working directory there
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
                print(
                    f"\nbench on {database} ({code}): {SECONDS:.0f} s each, {CONCURRENCY} connections, "
                    f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
                    + (", an Idempotency-Key on each registration" if IDEMPOTENCY_KEYS else "")
                )
                pids = {name: process.pid for name, process in processes.items()}
                bare: dict[str, Any] | None = None
                if shutil.which("wrk"):
                    baseline = await asyncio.to_thread(
                        wrk, "baseline GET /healthz", f"{gateway}/healthz", headers={}, body=None, workdir=var
                    )
                    if postgres_name is not None and BARE:
                        bare = await bare_insert(database_url, var, postgres_name)
                    named = body() | {"given_names": "Bench BENCHNAME"}
                    opened = await sessions_opened(postgres_name)
                    meter = Meter(pids, postgres_name)
                    spies = profiled(pids, f"{code.name}-{uuid.uuid4().hex[:4]}")
                    registrations = await asyncio.to_thread(
                        wrk,
                        "POST /api/v1/registrations",
                        f"{gateway}/api/v1/registrations",
                        headers=auth,
                        body=named,
                        workdir=var,
                        idempotency_keys=IDEMPOTENCY_KEYS,
                    )
                    for spy in spies:
                        spy.wait(30)
                else:
                    print("  ! wrk is not installed (apt-get install wrk): the Python load generator below is")
                    print("    itself the bottleneck, so these figures say little about the services.")
                    baseline = summary("baseline GET /healthz", await load(client, "GET", "/healthz", None, {}))
                    opened = await sessions_opened(postgres_name)
                    meter = Meter(pids, postgres_name)
                    registrations = summary(
                        "POST /api/v1/registrations", await load(client, "POST", "/api/v1/registrations", body, auth)
                    )
                cpu_ms = meter.per_request(registrations["per_second"] * SECONDS)
                cpu_per_request: dict[str, Any] = {"cpu_ms_per_request": cpu_ms}
                print("    CPU per registration: " + cpu_line(cpu_ms))
                if postgres_name is not None:
                    cpu_per_request["connections_opened"] = await sessions_opened(postgres_name) - opened
                    print(f"    database connections opened meanwhile: {cpu_per_request['connections_opened']}")
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
            measured = {
                "code": str(code),
                "baseline": baseline,
                "registrations": registrations | cpu_per_request,
                "events": events,
                "memory_mb": memory,
                "ratio": ratio,
            }
            if bare is not None:
                # Only answers that did the work count (as bench/pipeline.py's ingest phase counts them).
                done = registrations["per_second"] - registrations["errors"] / SECONDS
                measured["bare"] = bare
                measured["ratio_to_bare"] = done / (bare["per_second"] - bare["errors"] / SECONDS)
                print(f"  registrations reach {measured['ratio_to_bare']:.3f} of the bare FastAPI + insert")
            return measured
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
