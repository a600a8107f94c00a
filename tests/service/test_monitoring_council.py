"""The monitoring service's council view and planning routes against a real database and the real broker: a
proposal's follow-up with its history and the answers that refuse a step; the planned places and the five-year
forecast as JSON and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.service.test_monitoring_api import ADMIN, ANALYST, broker, monitoring, seeded

__all__ = ["broker", "monitoring"]  # the fixtures, shared with the indicators' tests

PROPOSALS = "/api/v1/monitoring/council/proposals"


def as_user(role: dict[str, str], name: str) -> dict[str, str]:
    return {**role, "X-Actor": name}


async def test_a_proposal_is_accepted_assigned_and_tracked_to_done(monitoring: httpx.AsyncClient) -> None:
    body = {
        "title": "Weiterer Integrationskurs",
        "text": "Die Warteliste ist länger als die freien Plätze.",
        "rule": "R1-waiting-list",
        "period": "2026-Q4",
    }
    made = await monitoring.post(PROPOSALS, json=body, headers=as_user(ANALYST, "statistik"))
    assert made.status_code == 201, made.text
    proposal = made.json()
    pid = proposal["proposal_id"]
    assert (proposal["status"], proposal["created_by"]) == ("proposed", "statistik")
    assert proposal["rule"] == "R1-waiting-list"
    assert [s["action"] for s in proposal["history"]] == ["create"]

    async def act(headers: dict[str, str] | None = None, **step: Any) -> httpx.Response:
        return await monitoring.post(f"{PROPOSALS}/{pid}/actions", json=step, headers=headers or ADMIN)

    assert (await act(action="complete")).status_code == 409  # not accepted yet
    accepted = await act(as_user(ADMIN, "admin"), action="accept", note="Beschluss des Integrationsrats")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    missing = await act(action="assign")
    assert missing.status_code == 422 and missing.headers["content-type"].startswith("application/problem+json")
    assigned = await act(
        as_user(ANALYST, "statistik"), action="assign", assignee="Amt für Soziales", due_on="2027-03-31"
    )
    assert (assigned.json()["status"], assigned.json()["assignee"]) == ("in_progress", "Amt für Soziales")
    assert assigned.json()["due_on"] == "2027-03-31"
    done = await act(action="complete", note="Kurs ab Februar geplant")
    assert done.json()["status"] == "done"
    refused = await act(action="accept")
    assert refused.status_code == 409 and refused.json()["status_now"] == "done"
    assert (await act(action="reopen")).status_code == 422  # a reason is needed
    assert (await act(action="hurry")).status_code == 422

    read = (await monitoring.get(f"{PROPOSALS}/{pid}", headers=ANALYST)).json()
    steps = [(s["action"], s["status"], s["actor"]) for s in read["history"]]
    assert steps == [
        ("create", "proposed", "statistik"),
        ("accept", "accepted", "admin"),
        ("assign", "in_progress", "statistik"),
        ("complete", "done", "unauthenticated"),
    ]
    assert read["history"][3]["note"] == "Kurs ab Februar geplant"

    listed = (await monitoring.get(PROPOSALS, params={"status": "done"}, headers=ANALYST)).json()
    assert [p["proposal_id"] for p in listed["items"]] == [pid] and listed["counts"]["done"] == 1
    assert listed["items"][0]["history"] is None  # the list stays short
    assert (await monitoring.get(PROPOSALS, params={"status": "maybe"}, headers=ANALYST)).status_code == 422


async def test_council_routes_check_the_role_and_the_object(monitoring: httpx.AsyncClient) -> None:
    for role in ({}, {"X-Role": "caseworker"}, {"X-Role": "registrar"}, {"X-Role": "partner"}):
        assert (await monitoring.get(PROPOSALS, headers=role)).status_code == 403
        assert (await monitoring.post(PROPOSALS, json={"title": "x", "text": "y"}, headers=role)).status_code == 403
    unknown = await monitoring.get(f"{PROPOSALS}/00000000-0000-0000-0000-000000000000", headers=ANALYST)
    assert unknown.status_code == 404 and unknown.json()["status"] == 404
    step = await monitoring.post(f"{PROPOSALS}/{'x' * 300}/actions", json={"action": "accept"}, headers=ANALYST)
    assert step.status_code == 404
    extra = await monitoring.post(PROPOSALS, json={"title": "x", "text": "y", "person_id": "p1"}, headers=ANALYST)
    assert extra.status_code == 422  # unknown fields are refused, nothing personal slips in
    blank = await monitoring.post(PROPOSALS, json={"title": "  ", "text": "y"}, headers=ANALYST)
    assert blank.status_code == 422


CAPACITIES = "/api/v1/monitoring/planning/capacities"


async def test_planned_places_and_the_forecast(monitoring: httpx.AsyncClient, broker: Any) -> None:
    """The indicators' scenario: five children aged 0-2 registered in Weststadt on 3 November 2026, the
    only children, so month 12 of the trend has 5 and the others 0. Least squares over t = 1..12:
    slope b = 5.5 * 5 / 143 = 0.19231, intercept a = 5/12 - 6.5 b = -0.8333. From December 2026 (t = 13) to
    August 2027 (t = 21): 9 a + b (13 + ... + 21) = -7.5 + 0.19231 * 153 = 21.92 arrivals, all Kita (as in the
    last twelve months). The five children are 9 months older on 1 September 2027, still 0-5: Kita demand
    5 + 21.92 = 26.92, published as 27; school 0. Places entered: 20, so the gap is 20 - 27 = -7."""
    duplicate = {"capacities": [{"year": 2027, "district": "Weststadt", "kind": "kita", "places": 20}] * 2}
    assert (await monitoring.put(CAPACITIES, json=duplicate, headers=ANALYST)).status_code == 422
    wrong = {"capacities": [{"year": 2027, "district": "Weststadt", "kind": "hort", "places": 20}]}
    assert (await monitoring.put(CAPACITIES, json=wrong, headers=ANALYST)).status_code == 422
    body = {"capacities": [{"year": 2027, "district": "Weststadt", "kind": "kita", "places": 20}]}
    stored = await monitoring.put(CAPACITIES, json=body, headers=ANALYST)
    assert stored.status_code == 200 and stored.json()["capacities"] == body["capacities"]
    assert (await monitoring.put(CAPACITIES, json=body, headers={"X-Role": "caseworker"})).status_code == 403

    await seeded(monitoring, broker.bootstrap_servers)
    reply = await monitoring.get("/api/v1/monitoring/planning/forecast", headers=ANALYST)
    assert reply.status_code == 200, reply.text
    document = reply.json()
    assert document["school_years"] == ["2027/28", "2028/29", "2029/30", "2030/31", "2031/32"]
    rows = {(r["school_year"], r["district"], r["kind"]): r for r in document["rows"]}
    kita = rows[("2027/28", "Weststadt", "kita")]
    assert (kita["expected"], kita["places"], kita["gap"]) == (27, 20, -7)
    assert kita["low"] <= kita["expected"] <= kita["high"]
    assert rows[("2027/28", "Weststadt", "school")]["expected"] == 0
    assert {d for _, d, _ in rows} == {"Weststadt"}
    assert document["trend"]["slope_per_month"] == 0.192

    table = await monitoring.get("/api/v1/monitoring/planning/forecast", params={"format": "csv"}, headers=ADMIN)
    assert table.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(table.text)))
    assert len(lines) == 10 and lines[0]["district"] == "Weststadt" and lines[0]["expected"] == "27"


async def test_the_district_conference_summary(monitoring: httpx.AsyncClient, broker: Any) -> None:
    """The year 2026 of the indicators' scenario: 19 registrations (not counting the erased person), withheld
    figures as crosses, the council's proposals with their state in German, the next school year's Kita demand."""
    made = await monitoring.post(
        PROPOSALS, json={"title": "Frauenkurse mit Kinderbetreuung", "text": "R3"}, headers=ANALYST
    )
    pid = made.json()["proposal_id"]
    await monitoring.post(f"{PROPOSALS}/{pid}/actions", json={"action": "accept"}, headers=ANALYST)
    await seeded(monitoring, broker.bootstrap_servers)

    reply = await monitoring.get("/api/v1/monitoring/conference", params={"year": 2026}, headers=ANALYST)
    assert reply.status_code == 200, reply.text
    document = reply.json()
    assert document["title"] == "Integrationskonferenz Landkreis Landsberg am Lech 2026"
    lines = {line["label"]: line["value"] for s in document["sections"] for line in s["lines"]}
    assert lines["Anmeldungen von Neuzugewanderten"] == "19"
    assert lines["Anmeldungen: Sonstige"] == "\u00d7"  # four persons (one of five erased): withheld
    assert lines["Bedarf an Kita-Plätzen im Schuljahr 2027/28"].startswith("27 (Spanne ")
    assert document["proposals"] == [
        {"title": "Frauenkurse mit Kinderbetreuung", "status": "angenommen", "assignee": None, "due_on": None}
    ]

    html = await monitoring.get("/api/v1/monitoring/conference", params={"year": 2026, "format": "html"}, headers=ADMIN)
    assert html.headers["content-type"].startswith("text/html") and '<html lang="de">' in html.text
    assert "Vorschläge an den Integrationsrat" in html.text and "angenommen" in html.text
    assert (
        await monitoring.get("/api/v1/monitoring/conference", params={"year": 1800}, headers=ANALYST)
    ).status_code == 422
    denied = await monitoring.get(
        "/api/v1/monitoring/conference", params={"year": 2026}, headers={"X-Role": "caseworker"}
    )
    assert denied.status_code == 403
