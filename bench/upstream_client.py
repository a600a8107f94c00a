"""The gateway's client for the services: its own HTTP/1.1 pool (chassis.http.UpstreamTransport) against httpx's
(httpcore, HTTP/1.1, pooled), in the same run on the same machine.

One upstream (a tiny FastAPI app under uvicorn that answers a registration-shaped POST with 201 and a small JSON
body, no database: the client's share shows), and two gateways in front of it, alike but for the transport. wrk
posts through each in turn, ``BENCH_ROUNDS`` times, alternating (the machine is shared: alternating spreads the
noise over both). Reported per variant: requests a second, and the gateway's CPU time per request (user + system,
from /proc), which is what the transport changes.

``BENCH_OTHER_TREE=/path/to/another/checkout`` adds a third gateway, that checkout's own (``gateway.app:create_app``
run there, its default transport): the gateway's per-request cost before and after a change, in the same run.
``BENCH_VARIANTS`` (default ``lean,httpx``, plus ``other`` with a tree) picks and orders them.

Run: ``.venv/bin/python -m bench.upstream_client`` (needs wrk).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from bench.run import CONCURRENCY, SECONDS, body, cpu_seconds, wrk
from chassis.embedded_broker import free_port, wait_for_port
from gateway.app import MAX_CONNECTIONS, MAX_KEEPALIVE, create_app

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
OTHER_TREE = os.environ.get("BENCH_OTHER_TREE")
VARIANTS = os.environ.get("BENCH_VARIANTS", "lean,httpx" + (",other" if OTHER_TREE else "")).split(",")


def upstream_app() -> FastAPI:
    """A service that costs next to nothing: what is measured is the hop."""
    app = FastAPI()

    @app.post("/api/v1/registrations", status_code=201)
    async def register() -> dict[str, str]:
        return {"person_id": str(uuid.uuid4()), "status": "registered"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def gateway_lean() -> FastAPI:
    """The gateway with chassis.http's pool."""
    from chassis.http import UpstreamTransport

    return create_app(
        transport=UpstreamTransport(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)
    )


def gateway_httpx() -> FastAPI:
    """The gateway with httpx's own pool (httpcore), HTTP/1.1."""
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)
    return create_app(transport=httpx.AsyncHTTPTransport(limits=limits))


def serve(factory: str, port: int, env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port), "--no-access-log"]
    return subprocess.Popen([*command, "--log-level", "warning"], cwd=cwd, env=env)


def start(name: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    if name == "other":
        if OTHER_TREE is None:
            raise SystemExit("the variant 'other' needs BENCH_OTHER_TREE")
        return serve("gateway.app:create_app", port, env, Path(OTHER_TREE))
    return serve(f"bench.upstream_client:gateway_{name}", port, env)


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    load = os.getloadavg()[0]
    return f"{platform.node()}: {model}, {os.cpu_count()} cores, load {load:.1f}, Python {platform.python_version()}"


def main() -> None:
    var = ROOT / "var" / f"bench-upstream-{uuid.uuid4().hex[:6]}"
    var.mkdir(parents=True)
    ports = {name: free_port() for name in ["upstream", *VARIANTS]}
    env = dict(
        os.environ,
        ENVIRONMENT="development",
        DEMO_DATA="true",
        LOG_LEVEL="WARNING",
        GATEWAY_REGISTRATION_URL=f"http://127.0.0.1:{ports['upstream']}",
        GATEWAY_LOCAL_USERS_FILE=str(var / "users.json"),
        GATEWAY_RATE_LIMIT_PER_MINUTE_USER="10000000",
    )
    processes = {"upstream": serve("bench.upstream_client:upstream_app", ports["upstream"], env)}
    try:
        wait_for_port(ports["upstream"], timeout_s=180)
        for name in VARIANTS:  # one after the other: the first makes the users file and the signing key
            processes[name] = start(name, ports[name], env)
            wait_for_port(ports[name], timeout_s=180)
        time.sleep(1)
        password = dict(line.split(" ", 1) for line in (var / "users.credentials.txt").read_text().splitlines())
        sign_in = {"username": "registrar", "password": password["registrar"]}
        token = httpx.post(f"http://127.0.0.1:{ports[VARIANTS[0]]}/auth/token", json=sign_in).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for name in VARIANTS:  # warm up: connections, caches
            for _ in range(50):
                httpx.post(f"http://127.0.0.1:{ports[name]}/api/v1/registrations", json=body(), headers=auth)
        print(f"\n{machine()}\n{SECONDS:.0f} s each, {CONCURRENCY} connections, {ROUNDS} rounds")
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
        for _ in range(ROUNDS):
            for name in VARIANTS:
                pid = processes[name].pid
                before = cpu_seconds(pid)
                result = wrk(
                    f"{name} POST",
                    f"http://127.0.0.1:{ports[name]}/api/v1/registrations",
                    headers=auth,
                    body=body(),
                    workdir=var,
                )
                count = max(result["per_second"] * SECONDS, 1)
                cpu_ms = 1000 * (cpu_seconds(pid) - before) / count
                print(f"    gateway CPU per request {cpu_ms:.3f} ms")
                results[name].append((result["per_second"], cpu_ms))
        print("\nmedians:")
        summary: dict[str, Any] = {}
        for name, rows in results.items():
            rate, cpu = statistics.median(r for r, _ in rows), statistics.median(c for _, c in rows)
            summary[name] = {"per_second": rate, "cpu_ms_per_request": cpu}
            print(f"  {name:<6} {rate:8.0f}/s   gateway CPU {cpu:.3f} ms per request")
        first = summary[VARIANTS[0]]
        for name in VARIANTS[1:]:
            print(
                f"  {name}: {summary[name]['per_second'] / first['per_second']:.2f} of {VARIANTS[0]}'s rate, "
                f"{summary[name]['cpu_ms_per_request'] / first['cpu_ms_per_request']:.2f} of its CPU per request"
            )
    finally:
        for process in reversed(processes.values()):  # the gateways before their upstream
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
