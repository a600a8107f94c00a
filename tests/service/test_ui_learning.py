"""The staff web UI for courses, the integration plan and needs, through the gateway over HTTP.

The gateway is the real app; the registration, referral and courses apps are the real apps on SQLite
with the session's broker, reached over ASGI mounts. A client signs in like a browser (session and
CSRF cookies, forms) and reads the server-rendered pages: the course page with the waiting list in its
documented order, cancelling and offers, attendance and completion; the case page's goals, needs and
enrolment, with German messages next to the fields a 422 names and the typed input kept.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.calendar import today as city_today
from gateway.app import create_app
from services.courses.app import create_app as create_courses
from services.referral.app import create_app as create_referral
from services.registration.app import create_app as create_registration
from tests.conftest import (
    behind_gateway,
    course_body,
    courses_settings,
    eventually,
    gateway_settings,
    newcomer,
    referral_settings,
    registration_settings,
    sqlite_url,
)

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Element(HTMLParser):
    """The text and the start tags inside the element with one id (enough to read a page's parts)."""

    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.element_id = element_id
        self.depth = 0
        self.found = False
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.tags.append((tag, dict(attrs)))
            self.depth += tag not in VOID
        elif dict(attrs).get("id") == self.element_id:
            self.found = True
            self.tags.append((tag, dict(attrs)))
            self.depth = 0 if tag in VOID else 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag not in VOID:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text.append(data)


def part(html: str, element_id: str) -> _Element:
    parser = _Element(element_id)
    parser.feed(html)
    assert parser.found, f"no element #{element_id} on the page"
    return parser


def text(html: str, element_id: str) -> str:
    return " ".join(" ".join(part(html, element_id).text).split())


def rows(html: str, table_id: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in part(html, table_id).tags if tag == "tr" and attrs.get("id")]


def enrolment(row: dict[str, str | None]) -> str:
    return str(row["id"]).removeprefix("enrolment-")


def value(html: str, element_id: str) -> str | None:
    return part(html, element_id).tags[0][1].get("value")


class Visitor:
    """One browser: cookies (Secure, hence https), signing in, and posting forms with the CSRF token."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="https://testserver")

    async def sign_in(self, username: str) -> None:
        page = await self.client.get("/ui/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        password = self.gateway.state.demo_credentials[username]
        reply = await self.client.post(
            "/ui/sign-in",
            data={"csrf_token": token.group(1), "username": username, "password": password, "next": "/ui/"},
        )
        assert reply.status_code == 303, reply.text

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, data: dict[str, Any], *, follow: bool = False) -> httpx.Response:
        form = {"csrf_token": self.client.cookies.get("lip_csrf", "")} | data
        return await self.client.post(path, data=form, follow_redirects=follow)


class Site:
    def __init__(self, gateway: Any, api: httpx.AsyncClient) -> None:
        self.gateway = gateway
        self.api = api

    async def bearer(self, username: str) -> dict[str, str]:
        password = self.gateway.state.demo_credentials[username]
        reply = await self.api.post("/auth/token", json={"username": username, "password": password})
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    async def course(self, **overrides: Any) -> str:
        reply = await self.api.post("/api/v1/courses", json=course_body(**overrides), headers=await self.bearer("vhs"))
        assert reply.status_code == 201, reply.text
        return str(reply.json()["course_id"])

    async def enrol(self, course: str, person: str, obligation: bool = False) -> dict[str, Any]:
        body = {"person_id": person, "integration_course_obligation": obligation}
        reply = await self.api.post(f"/api/v1/courses/{course}/enrolments", json=body, headers=await self.bearer("vhs"))
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    async def newcomer(self) -> str:
        """A person registered (Arabic: their case goes to lotse's team), once the courses service knows the case:
        a caseworker sees and enrols only the people of their team's cases."""
        reply = await self.api.post("/api/v1/registrations", json=newcomer(), headers=await self.bearer("registrar"))
        assert reply.status_code == 201, reply.text
        person = str(reply.json()["person_id"])
        await self.known_to_courses(person)
        return person

    async def known_to_courses(self, person: str) -> None:
        as_lotse = await self.bearer("lotse")

        async def known() -> bool:
            reply = await self.api.get(f"/api/v1/learners/{person}/enrolments", headers=as_lotse)
            return reply.status_code == 200

        await eventually(known, timeout_s=20)

    async def visitor(self, username: str) -> Visitor:
        visitor = Visitor(self.gateway)
        await visitor.sign_in(username)
        return visitor


@pytest.fixture
async def site(broker: Any, tmp_path: Path) -> AsyncIterator[Site]:
    bootstrap = broker.bootstrap_servers
    apps = {
        "registration": create_registration(registration_settings(sqlite_url(tmp_path, "registration"), bootstrap)),
        "referral": create_referral(referral_settings(sqlite_url(tmp_path, "referral"), bootstrap, demo_data=True)),
        "courses": create_courses(courses_settings(sqlite_url(tmp_path, "courses"), bootstrap)),
    }
    gateway = create_app(gateway_settings(tmp_path, demo_data=True))
    async with AsyncExitStack() as stack:
        api = await behind_gateway(stack, gateway, apps)
        yield Site(gateway, api)


def sessions_from(days: int, hour: int, count: int = 3) -> list[dict[str, str]]:
    """Weekly sessions starting ``days`` from now at ``hour`` (UTC): different hours never overlap."""
    first = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(days=days)
    return [
        {
            "starts_at": (first + timedelta(weeks=i)).isoformat(),
            "ends_at": (first + timedelta(weeks=i, hours=1)).isoformat(),
        }
        for i in range(count)
    ]


async def test_the_course_page_shows_the_waiting_list_in_order_and_course_staff_work_it(site: Site) -> None:
    course = await site.course(capacity=1, title="Deutsch am Abend", sessions=sessions_from(-14, 17))
    first, late, obliged = [await site.newcomer() for _ in range(3)]  # of lotse's team
    assert (await site.enrol(course, first))["status"] == "enrolled"
    assert (await site.enrol(course, late))["position"] == 1
    assert (await site.enrol(course, obliged, obligation=True))["position"] == 1, "the obligation goes first"

    # Anyone: the public facts and sessions, no people.
    page = (await Visitor(site.gateway).get(f"/ui/courses/{course}")).text
    assert "Deutsch am Abend" in page and text(page, "free-seats") == "0 / 1" and text(page, "waiting-count") == "2"
    assert len([tag for tag, _ in part(page, "sessions").tags if tag == "tr"]) == 1 + 3
    assert "waiting-list" not in page and first not in page

    # A caseworker reads the waiting list in its order, with the priority reason, and cannot cancel.
    lotse = await site.visitor("lotse")
    page = (await lotse.get(f"/ui/courses/{course}")).text
    waiting = rows(page, "waiting-list")
    assert [(r["data-person"], r["data-position"]) for r in waiting] == [(obliged, "1"), (late, "2")]
    assert "Verpflichtung zum Integrationskurs" in text(page, str(waiting[0]["id"]))
    assert [r["data-person"] for r in rows(page, "enrolled")] == [first]
    assert "Stornieren" not in page and 'id="attendance"' not in page
    english = (await lotse.get(f"/ui/courses/{course}?lang=en")).text
    assert "Waiting list (in the order seats are given)" in english and "integration course obligation" in english
    await lotse.get("/ui/?lang=de")  # back to German (the choice is kept in a cookie)
    refused = await lotse.post(f"/ui/courses/{course}/enrolments/{enrolment(waiting[0])}/cancel", {})
    assert refused.status_code == 403, "the role policy decides, not the page"

    # The course admin cancels the enrolled person: the seat is offered to the first in line, with expiry.
    vhs = await site.visitor("vhs")
    dashboard = (await vhs.get("/ui/")).text
    listed = next(r for r in rows(dashboard, "my-courses") if r["id"] == f"course-{course}")
    assert (listed["data-waiting"], listed["data-free"]) == ("2", "0")
    page = (await vhs.get(f"/ui/courses/{course}")).text
    enrolled = enrolment(rows(page, "enrolled")[0])
    forged = await vhs.client.post(f"/ui/courses/{course}/enrolments/{enrolled}/cancel", data={"csrf_token": "x"})
    assert forged.status_code == 403
    done = await vhs.post(f"/ui/courses/{course}/enrolments/{enrolled}/cancel", {})
    assert done.status_code == 303 and done.headers["location"] == f"/ui/courses/{course}?notice=done"
    page = (await vhs.get(f"/ui/courses/{course}")).text
    offer = rows(page, "offers")
    assert [r["data-person"] for r in offer] == [obliged]
    assert re.search(r"\d\d\.\d\d\.\d{4}, \d\d:\d\d", text(page, str(offer[0]["id"]))), "the expiry, German"
    assert [(r["data-person"], r["data-position"]) for r in rows(page, "waiting-list")] == [(late, "1")]
    assert text(page, "ended") == f"Person {first[:8]}: storniert (von der Kursverwaltung)"

    # Accept the offer, record attendance, and a completion: a future date is refused in German.
    offered = enrolment(offer[0])
    assert (await vhs.post(f"/ui/courses/{course}/enrolments/{offered}/accept-offer", {})).status_code == 303
    page = (await vhs.get(f"/ui/courses/{course}")).text
    assert [(r["data-person"], r["data-status"]) for r in rows(page, "enrolled")] == [(obliged, "enrolled")]
    [session] = [attrs["value"] for tag, attrs in part(page, "attendance-session").tags if "selected" in attrs]
    recorded = await vhs.post(
        f"/ui/courses/{course}/attendance", {"session_id": session, "enrolled": [offered], "present": [offered]}
    )
    assert recorded.status_code == 303 and "notice=done" in recorded.headers["location"]
    wrong = await vhs.post(f"/ui/courses/{course}/attendance", {"session_id": "no-such", "enrolled": [offered]})
    assert "error=" in wrong.headers["location"]
    tomorrow = (city_today() + timedelta(days=2)).isoformat()
    completion = {"result": "passed", "certificate": "DTZ B1", "completed_on": tomorrow}
    future = await vhs.post(f"/ui/courses/{course}/enrolments/{offered}/completion", completion, follow=True)
    assert "Das Abschlussdatum darf nicht in der Zukunft liegen." in future.text
    completion["completed_on"] = city_today().isoformat()
    finished = await vhs.post(f"/ui/courses/{course}/enrolments/{offered}/completion", completion, follow=True)
    assert "bestanden (DTZ B1)" in text(finished.text, f"enrolment-{offered}")
    assert "Erledigt." in finished.text


async def test_the_case_page_keeps_the_plan_the_needs_and_the_courses(site: Site) -> None:
    registered = await site.api.post("/api/v1/registrations", json=newcomer(), headers=await site.bearer("registrar"))
    person = registered.json()["person_id"]
    as_lotse = await site.bearer("lotse")

    async def case_of() -> str | None:
        found = (await site.api.get("/api/v1/cases", params={"person_id": person}, headers=as_lotse)).json()
        return str(found["items"][0]["case_id"]) if found.get("items") else None

    case = await eventually(case_of, timeout_s=20)

    async def reachable() -> bool:  # registration learns the case's team from referral's events (issue 12)
        return (await site.api.get(f"/api/v1/persons/{person}", headers=as_lotse)).status_code == 200

    await eventually(reachable, timeout_s=20)
    await site.known_to_courses(person)
    lotse = await site.visitor("lotse")
    page = (await lotse.get(f"/ui/cases/{case}")).text
    assert "Noch keine Bedarfserhebung." in page and "Noch keine Ziele." in page

    # The integration plan: a goal without a title comes back with the typed input and a German message.
    goal = {"dimension": "culture_and_language", "title": " ", "due_on": "2027-01-31"}
    refused = await lotse.post(f"/ui/cases/{case}/goals", goal)
    assert refused.status_code == 422
    assert text(refused.text, "goal-title-error") == "Bitte ausfüllen."
    assert value(refused.text, "goal-due_on") == "2027-01-31"
    assert 'value="culture_and_language" selected' in refused.text
    added = await lotse.post(f"/ui/cases/{case}/goals", goal | {"title": "Deutsch B1 erreichen"})
    assert added.status_code == 303 and added.headers["location"].endswith("#goals-h")
    page = (await lotse.get(f"/ui/cases/{case}")).text
    [row] = rows(page, "goals")
    goal_id = str(row["id"]).removeprefix("goal-")
    assert row["data-status"] == "open" and "Deutsch B1 erreichen" in text(page, "goals")
    bad_date = await lotse.post(f"/ui/cases/{case}/goals/{goal_id}", {"status": "achieved", "due_on": "31.12.2026"})
    assert bad_date.status_code == 422
    assert text(bad_date.text, f"goal-due-{goal_id}-error") == "Bitte ein gültiges Datum angeben."
    assert value(bad_date.text, f"goal-due-{goal_id}") == "31.12.2026"
    achieved = {"status": "achieved", "due_on": "2027-01-31", "current_due_on": "2027-01-31"}
    assert (await lotse.post(f"/ui/cases/{case}/goals/{goal_id}", achieved)).status_code == 303
    page = (await lotse.get(f"/ui/cases/{case}")).text
    assert rows(page, "goals")[0]["data-status"] == "achieved" and "31.01.2027" in text(page, "goals"), "a German date"

    # Needs: the German level missing and an age that is no number; both named, the rest kept.
    needs = {
        "german_level": "",
        "schooling": "secondary",
        "employment_situation": "job_seeking",
        "other_languages": "en",
        "vocational_qualification": "Pflegediplom",
        "children_ages": "3, drei",
        "childcare_needed": "true",
        "notes": "",
    }
    refused = await lotse.post(f"/ui/cases/{case}/needs", needs)
    assert refused.status_code == 422
    assert text(refused.text, "needs-german_level-error") == "Bitte ausfüllen."
    assert text(refused.text, "needs-children_ages-error") == "Bitte ganze Zahlen angeben, durch Komma getrennt."
    assert value(refused.text, "needs-vocational_qualification") == "Pflegediplom"
    assert value(refused.text, "needs-children_ages") == "3, drei"
    assert "checked" in part(refused.text, "needs-childcare_needed").tags[0][1]
    assert "checked" not in part(refused.text, "needs-housing_need").tags[0][1]
    saved = await lotse.post(f"/ui/cases/{case}/needs", needs | {"german_level": "A1", "children_ages": "3, 6"})
    assert saved.status_code == 303
    page = (await lotse.get(f"/ui/cases/{case}")).text
    latest = text(page, "latest-needs")
    assert "A1" in latest and "Sprache" in latest and "Kinderbetreuung" in latest
    assert value(page, "needs-children_ages") == "3, 6", "a new assessment starts from the latest"
    assert "Englisch" in latest, "other languages by name"
    assert "checked" in part(page, "needs-other-en").tags[0][1], "the languages are check boxes, by name"
    assert "Sprachcodes" not in page

    # Courses: enrol from the catalogue; again is refused, a closed enrolment window too, in German.
    open_course = await site.course(capacity=5, title="Deutsch kompakt", sessions=sessions_from(20, 7))
    full = await site.course(capacity=1, title="Kleiner Kurs", sessions=sessions_from(21, 12))
    closed = await site.course(
        capacity=5,
        title="Geschlossener Kurs",
        sessions=sessions_from(22, 15),
        enrolment_closes_on=(city_today() - timedelta(days=1)).isoformat(),
    )
    await site.enrol(full, f"someone-{uuid.uuid4().hex[:6]}")
    page = (await lotse.get(f"/ui/cases/{case}")).text
    assert "Deutsch kompakt (5 von 5 frei, 0 wartend)" in text(page, "enrol-course")
    done = await lotse.post(f"/ui/cases/{case}/enrolments", {"course_id": open_course})
    assert done.status_code == 303
    page = (await lotse.get(done.headers["location"])).text
    assert text(page, "enrol-result") == "Angemeldet: Deutsch kompakt."
    assert [(r["data-course"], r["data-status"]) for r in rows(page, "enrolments")] == [(open_course, "enrolled")]
    again = await lotse.post(f"/ui/cases/{case}/enrolments", {"course_id": open_course})
    assert again.status_code == 409
    assert "Die Person ist in diesem Kurs schon angemeldet oder auf der Warteliste." in text(again.text, "enrol-error")
    shut = await lotse.post(f"/ui/cases/{case}/enrolments", {"course_id": closed, "obligation": "true"})
    assert shut.status_code == 422 and "zurzeit nicht offen" in text(shut.text, "enrol-error")
    assert f'value="{closed}" selected' in shut.text and "checked" in part(shut.text, "enrol-obligation").tags[0][1]
    nothing = await lotse.post(f"/ui/cases/{case}/enrolments", {"course_id": ""})
    assert nothing.status_code == 422 and "Bitte ausfüllen." in text(nothing.text, "enrol-error")

    # The full course: the waiting list, on the case page and on the caseworker's dashboard.
    waiting = await lotse.post(f"/ui/cases/{case}/enrolments", {"course_id": full}, follow=True)
    assert text(waiting.text, "enrol-result") == "Der Kurs Kleiner Kurs ist voll: auf der Warteliste, Platz 1."
    dashboard = (await lotse.get("/ui/")).text
    [entry] = rows(dashboard, "course-waiting")
    assert entry["data-person"] == person and entry["data-status"] == "waitlisted"
    assert "Kleiner Kurs" in text(dashboard, "course-waiting") and "Platz 1" in text(dashboard, "course-waiting")

    # The person page shows the caseworker the needs, read-only; the registrar none (needs are not theirs).
    page = (await lotse.get(f"/ui/persons/{person}")).text
    assert "A1" in text(page, "latest-needs") and 'id="needs-form"' not in page
    registrar = await site.visitor("registrar")
    page = (await registrar.get(f"/ui/persons/{person}")).text
    assert 'id="needs-h"' not in page and 'id="latest-needs"' not in page
