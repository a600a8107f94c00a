"""`make run`'s launcher starts the broker, the registration service and the gateway; a registration
through the gateway reaches the broker as a CloudEvent that a third-party SDK reads; Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from cloudevents.core.bindings import kafka as ck

from chassis.embedded_broker import free_port, port_in_use
from contracts.calendar import today as city_today
from contracts.registration import PERSONS_TOPIC
from tests.conftest import consume, eventually, newcomer

ROOT = Path(__file__).resolve().parents[2]


def start_platform(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, int], list[str]]:
    ports = {
        "GATEWAY_PORT": free_port(),
        "REGISTRATION_PORT": free_port(),
        "REFERRAL_PORT": free_port(),
        "COURSES_PORT": free_port(),
        "PARTNERS_PORT": free_port(),
        "MONITORING_PORT": free_port(),
        "EMBEDDED_BROKER_PORT": free_port(),
    }
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({k: str(v) for k, v in ports.items()})
    env["REGISTRATION_DATABASE_URL"] = f"sqlite:///{tmp_path / 'registration.db'}"
    env["REFERRAL_DATABASE_URL"] = f"sqlite:///{tmp_path / 'referral.db'}"
    env["COURSES_DATABASE_URL"] = f"sqlite:///{tmp_path / 'courses.db'}"
    env["COURSES_DEV_SIGNING_KEY_FILE"] = str(tmp_path / "pass-signing.key")
    env["PARTNERS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'partners.db'}"
    env["GATEWAY_LOCAL_USERS_FILE"] = str(tmp_path / "gateway-users.json")
    env["MONITORING_DATABASE_URL"] = f"sqlite:///{tmp_path / 'monitoring.db'}"
    process = subprocess.Popen(
        [sys.executable, "scripts/run.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    return process, ports, lines


def wait_for(predicate: Any, timeout_s: float, what: str, lines: list[str]) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {timeout_s}s; output:\n{''.join(lines)[-4000:]}"
        time.sleep(0.2)


async def test_run_serves_registrations_through_the_gateway_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process, ports, lines = start_platform(tmp_path)
    try:
        wait_for(lambda: any("platform is running" in line for line in lines), 120, "start-up", lines)
        output = "".join(lines)
        assert f"http://127.0.0.1:{ports['GATEWAY_PORT']}/api/v1/" in output
        assert "'registered': 6" in output, "demo data loaded"

        gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
        body = newcomer(given_names="Samira", family_name="Nouri", birth_date="1993-09-17")
        credentials = dict(
            line.split(" ", 1) for line in (tmp_path / "gateway-users.credentials.txt").read_text().splitlines()
        )
        assert f"registrar    {credentials['registrar']}" in output, "make run prints the demo sign-ins"
        async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
            assert (await client.post("/api/v1/registrations", json=body)).status_code == 401, "sign-in first"
            for user in ("registrar", "lotse", "statistik"):
                token = await client.post("/auth/token", json={"username": user, "password": credentials[user]})
                assert token.status_code == 200, token.text
                credentials[user] = f"Bearer {token.json()['access_token']}"
            client.headers["Authorization"] = credentials["registrar"]
            reply = await client.post("/api/v1/registrations", json=body)
            assert reply.status_code == 201, reply.text
            person = reply.json()["person_id"]
            assert reply.headers["x-request-id"]
            demo = await client.get("/api/v1/persons", params={"district": "Pössing"})
            assert demo.status_code == 200 and demo.json()["total"] == 3  # the Ahmadi household

            async def case_opened() -> bool:
                reply = await client.get(
                    "/api/v1/cases", params={"person_id": person}, headers={"Authorization": credentials["lotse"]}
                )
                return reply.status_code == 200 and reply.json()["total"] == 1

            await eventually(case_opened)  # the referral service learned of the registration by event
            catalogue = await client.get("/api/v1/courses")
            assert catalogue.status_code == 200 and catalogue.json()["total"] >= 5  # VHS demo courses
            period = city_today().strftime("%Y-%m")
            statistics = await client.get(
                "/api/v1/monitoring/indicators",
                params={"period": period},
                headers={"Authorization": credentials["statistik"]},
            )
            assert statistics.status_code == 200, statistics.text
            assert (await client.get("/api/v1/monitoring/indicators", params={"period": period})).status_code == 403
            directory = await client.get("/api/v1/partners")
            assert directory.status_code == 200 and directory.json()["total"] >= 7  # Landsberg's actors

        bootstrap = f"127.0.0.1:{ports['EMBEDDED_BROKER_PORT']}"
        records = await consume(bootstrap, PERSONS_TOPIC, until=lambda rs: any(r.key == person.encode() for r in rs))
        mine = [r for r in records if r.key == person.encode()]
        assert len(mine) == 1
        event = ck.from_binary_event(
            ck.KafkaMessage(headers=dict(mine[0].headers), key=mine[0].key, value=mine[0].value)
        )
        assert event.get_type() == "de.landsberg.integration.registration.person_registered.v1"
        data = event.get_data()
        assert isinstance(data, dict) and data["person_id"] == person
        raw = mine[0].value.decode()
        for personal in ("Samira", "Nouri", "1993-09-17", "Schwaighofstraße", "example.org"):
            assert personal not in raw
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(50)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode is not None
    for port in ports.values():
        assert not port_in_use(port), f"port {port} still served after Ctrl-C"
    for process_name in ("registration", "referral", "courses", "partners", "monitoring", "gateway", "broker"):
        assert f"{process_name} stopped" in "".join(lines)
    # The broker stops last, so that the services drain (consumer batch, outbox relay) while it is still there.
    stopped = [line for line in lines if " stopped" in line]
    assert "broker stopped, after the services" in stopped[-1], "".join(stopped)
