"""Load a city's reference data into a running platform, through the gateway's public API only.

    python -m scripts.load_reference_data --gateway https://integration.example.de \\
        --token-file admin.token reference/landsberg/
    python -m scripts.load_reference_data --gateway http://127.0.0.1:8000 --username admin reference/landsberg/

The folder holds any of (see ``reference/README.md`` for their format):

- ``partners.json``: partner organisations with their services (``POST /api/v1/partners``; an existing
  partner's entry is brought in line with ``PATCH``, its services with ``PUT .../services/{type}``),
- ``districts.json``: the population per district (``PUT /api/v1/monitoring/reference/districts``),
- ``blocks.json``: the residential blocks' id, name, district and residents (``PUT
  /api/v1/monitoring/reference/blocks``; their streets stay with registration, which reads the file itself:
  ``REGISTRATION_BLOCKS_FILE``),
- ``courses.json``: courses (``POST /api/v1/courses``; a course is known again by provider, title and
  first session, and its changeable terms are brought in line with ``PATCH``),
- ``meeting_offers.json``: meeting places and recurring offers (Begegnung) of the partners (``POST
  /api/v1/partners/{id}/meeting-offers``; an offer is known again by its partner and title, and what differs is
  brought in line with ``PATCH``),
- ``roster.json``: the caseworker roster (``PUT /api/v1/caseworkers/{user name}``).

Idempotent: everything is read first and only what differs is written, so a second run writes nothing.
What the partners keep themselves is left alone: a service's current free places (they keep them with
``PUT .../capacity``), fields the file does not name, and services the file does not list. Every write
carries an ``Idempotency-Key``, so a write retried after a network failure acts once. The caller needs
the ``admin`` role: a bearer token (``--token-file``, e.g. from the city's Keycloak) or the embedded
sign-in (``--username``; the password from ``--password-file``, ``$LOADER_PASSWORD`` or a prompt).
Exit status 0 when everything is in line, 1 when something was refused (each refusal is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

#: The directory entry's fields the file may name; those it leaves out stay as the partner keeps them.
PARTNER_FIELDS = ("name", "alternate_name", "category", "description", "website", "languages", "locations", "contacts")
LOCATION_DEFAULTS: dict[str, Any] = {
    "address_1": None,
    "postal_code": None,
    "country": "DE",
    "opening_hours": None,
    "district": None,
}
CONTACT_DEFAULTS: dict[str, Any] = {"department": None, "email": None, "phone": None}
#: A service's terms; its free places are the partner's to keep once it is offered.
SERVICE_DEFAULTS: dict[str, Any] = {"description": None, "eligibility": None, "response_days": 5}
#: What ``PATCH /courses/{id}`` changes; the rest of a scheduled course is fixed.
COURSE_CHANGEABLE = ("description", "capacity", "childcare_offered", "enrolment_closes_on", "location", "district")
COURSE_DEFAULTS: dict[str, Any] = {
    "description": None,
    "childcare_offered": False,
    "enrolment_closes_on": None,
    "location": "VHS Landsberg am Lech",
    "provider_id": "vhs-landsberg",
    "district": None,
}
COURSE_STATUSES = ("scheduled", "cancelled", "completed")
#: Answers worth trying again, with the same Idempotency-Key (the first try may have acted).
RETRY_STATUSES = frozenset({409, 429, 502, 503, 504})
#: A meeting offer's fields as the API answers them when the file leaves them out.
MEETING_OFFER_DEFAULTS: dict[str, Any] = {
    "description": None,
    "audience": "everyone",
    "schedule": None,
    "address": None,
    "district": None,
    "childcare": False,
    "free_of_charge": True,
}
FILES = ("partners.json", "districts.json", "blocks.json", "courses.json", "meeting_offers.json", "roster.json")


class Refused(Exception):
    """The platform refused a call; the message says what and why."""


class Unreachable(Exception):
    """The gateway does not answer: nothing more can be loaded in this run."""


@dataclass
class Report:
    """What happened to each object: created, updated, unchanged, or refused (with why)."""

    counts: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    def note(self, kind: str, name: str, outcome: str, detail: str = "") -> None:
        self.counts[f"{kind} {outcome}"] += 1
        self.lines.append(f"{kind} {name}: {outcome}" + (f" ({detail})" if detail else ""))
        print(self.lines[-1], flush=True)

    @property
    def refused(self) -> int:
        return sum(n for key, n in self.counts.items() if key.endswith(" refused"))


def problem(reply: httpx.Response) -> str:
    """A Problem Details answer as one line: the detail and each field error."""
    try:
        body = reply.json()
    except ValueError:
        return f"{reply.status_code} {reply.text[:200]}"
    if not isinstance(body, dict):
        return str(reply.status_code)
    errors = "; ".join(
        f"{'.'.join(str(p) for p in e.get('location', []) if p != 'body')}: {e.get('message')}"
        for e in body.get("errors") or []
    )
    return f"{reply.status_code} {body.get('detail', '')}" + (f" [{errors}]" if errors else "")


class Loader:
    def __init__(self, client: httpx.AsyncClient, report: Report, *, dry_run: bool = False) -> None:
        self.client = client
        self.report = report
        self.dry_run = dry_run
        self.run = uuid.uuid4().hex  # one run's keys: a later run with the same body is a new request

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.call("GET", path, params=params or None)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {}
        if method != "GET":
            fingerprint = json.dumps([method, path, kwargs.get("json")], sort_keys=True, default=str)
            headers["Idempotency-Key"] = f"load-{self.run}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:32]}"
        for attempt in range(4):
            try:
                reply = await self.client.request(method, f"/api/v1/{path}", headers=headers, **kwargs)
            except httpx.TransportError as exc:
                if attempt == 3:
                    raise Unreachable(f"{self.client.base_url} does not answer ({exc})") from exc
            else:
                if reply.status_code not in RETRY_STATUSES or attempt == 3:
                    return reply
                if reply.status_code == 409 and "idempotency-request-in-flight" not in reply.text:
                    return reply  # a real conflict, not "the same request is still running"
            await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    async def write(self, method: str, path: str, body: Any, expected: int = 200) -> None:
        if self.dry_run:
            return
        reply = await self.call(method, path, json=body)
        if reply.status_code != expected:
            raise Refused(problem(reply))

    # --- partners -----------------------------------------------------------------------------

    async def partners(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            partner_id = str(entry.get("partner_id", "?"))
            try:
                outcome, detail = await self.partner(entry)
            except Refused as refused:
                self.report.note("partner", partner_id, "refused", str(refused))
            else:
                self.report.note("partner", partner_id, outcome, detail)

    async def partner(self, entry: dict[str, Any]) -> tuple[str, str]:
        partner_id = quote(str(entry.get("partner_id", "")), safe="")
        current = await self.get(f"partners/{partner_id}") if partner_id else None
        if current is None or current.status_code in (404, 422):
            await self.write("POST", "partners", entry, expected=201)
            return "created", f"{len(entry.get('services') or [])} service(s)"
        if current.status_code != 200:
            raise Refused(problem(current))
        have = current.json()
        wanted = {name: normal(name, entry[name]) for name in PARTNER_FIELDS if name in entry}
        changes = {name: value for name, value in wanted.items() if normal(name, have.get(name)) != value}
        if changes:
            await self.write("PATCH", f"partners/{partner_id}", changes)
        offered = {s["service_type"]: s for s in have.get("services") or []}
        services = []
        for service in entry.get("services") or []:
            kind = quote(str(service.get("service_type", "")), safe="")
            terms = {
                **SERVICE_DEFAULTS,
                **{k: v for k, v in service.items() if k not in ("service_type", "free_places")},
            }
            before = offered.get(service.get("service_type"))
            if before is None:  # a new offer starts with the file's free places
                await self.write(
                    "PUT",
                    f"partners/{partner_id}/services/{kind}",
                    {**terms, "free_places": service.get("free_places")},
                )
                services.append(f"+{kind}")
            elif any(before.get(k) != v for k, v in terms.items()):  # new terms; the places stay the partner's
                await self.write(
                    "PUT", f"partners/{partner_id}/services/{kind}", {**terms, "free_places": before.get("free_places")}
                )
                services.append(kind)
        if not changes and not services:
            return "unchanged", ""
        return "updated", ", ".join([*changes, *services])

    # --- districts ----------------------------------------------------------------------------

    async def districts(self, document: dict[str, Any]) -> None:
        body = {
            "source": document.get("source"),
            "illustrative": document.get("illustrative"),
            "districts": document.get("districts"),
        }
        await self.replace_reference("districts", "population", body)

    # --- residential blocks ----------------------------------------------------------------------

    async def blocks(self, document: dict[str, Any]) -> None:
        """The monitoring's part of the blocks (no streets: those stay with registration)."""
        fields = ("block_id", "name", "district", "population")
        body: dict[str, Any] = {
            "source": document.get("source"),
            "illustrative": document.get("illustrative"),
            "blocks": sorted(
                ({k: b.get(k) for k in fields} for b in document.get("blocks") or []), key=lambda b: str(b["block_id"])
            ),
        }
        await self.replace_reference("blocks", "residents", body)

    async def replace_reference(self, listed: str, figure: str, body: dict[str, Any]) -> None:
        """Put monitoring's reference ``listed`` (districts, blocks: each a whole document, with its source and
        whether it is illustrative) unless it holds the same already; the report names it by ``figure``."""
        path = f"monitoring/reference/{listed}"
        try:
            current = await self.get(path)
            if current.status_code != 200:
                raise Refused(problem(current))
            have = current.json()
            if {k: have.get(k) for k in body} == body:
                self.report.note(listed, figure, "unchanged")
                return
            await self.write("PUT", path, body)
        except Refused as refused:
            self.report.note(listed, figure, "refused", str(refused))
            return
        marked = "illustrative" if body["illustrative"] else "official"
        self.report.note(listed, figure, "updated", f"{len(body[listed] or ())} {listed}, {marked}")

    # --- courses ------------------------------------------------------------------------------

    async def courses(self, document: dict[str, Any]) -> None:
        zone = ZoneInfo(str(document.get("time_zone", "Europe/Berlin")))
        known: dict[tuple[str, str, datetime], dict[str, Any]] = {}
        try:
            for provider in sorted(
                {str(c.get("provider_id", COURSE_DEFAULTS["provider_id"])) for c in document.get("courses") or []}
            ):
                for listed in await self.catalogue(provider):
                    first = min((instant(s["starts_at"], zone) for s in listed["sessions"]), default=None)
                    if first is not None:
                        known[(listed["provider_id"], listed["title"], first)] = listed
        except Refused as refused:
            self.report.note("courses", "catalogue", "refused", str(refused))
            return
        for spec in document.get("courses") or []:
            title = str(spec.get("title", "?"))
            try:
                body = course_body(spec, zone)
                first = min(instant(s["starts_at"], zone) for s in body["sessions"])
                provider = str(body.get("provider_id", COURSE_DEFAULTS["provider_id"]))
                course = known.get((provider, body["title"], first))
                name = f"{title!r} ({first.astimezone(zone):%Y-%m-%d})"
                if course is None:
                    await self.write("POST", "courses", body, expected=201)
                    self.report.note("course", name, "created", f"{len(body['sessions'])} sessions")
                    continue
                wanted = {k: body.get(k, COURSE_DEFAULTS.get(k)) for k in COURSE_CHANGEABLE}
                changes = {k: v for k, v in wanted.items() if course.get(k) != v}
                if not changes:
                    self.report.note("course", name, "unchanged")
                elif course["status"] != "scheduled":
                    self.report.note("course", name, "unchanged", f"{course['status']}: {', '.join(changes)} kept")
                else:
                    await self.write("PATCH", f"courses/{quote(course['course_id'], safe='')}", changes)
                    self.report.note("course", name, "updated", ", ".join(changes))
            except (Refused, KeyError, TypeError, ValueError) as refused:
                self.report.note("course", repr(title), "refused", str(refused) or type(refused).__name__)

    async def catalogue(self, provider: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for status in COURSE_STATUSES:
            page = 1
            while True:
                reply = await self.get("courses", provider_id=provider, status=status, page=page, page_size=200)
                if reply.status_code != 200:
                    raise Refused(problem(reply))
                listing = reply.json()
                found += listing["items"]
                if page * listing["page_size"] >= listing["total"]:
                    break
                page += 1
        return found

    # --- meeting offers (Begegnung) --------------------------------------------------------------

    async def meeting_offers(self, document: dict[str, Any]) -> None:
        published: dict[str, list[dict[str, Any]]] = {}
        for entry in document.get("offers") or []:
            name = f"{entry.get('partner_id', '?')} {str(entry.get('title', '?'))!r}"
            try:
                outcome, detail = await self.meeting_offer(entry, published)
            except Refused as refused:
                self.report.note("meeting offer", name, "refused", str(refused))
            else:
                self.report.note("meeting offer", name, outcome, detail)

    async def meeting_offer(self, entry: dict[str, Any], published: dict[str, list[dict[str, Any]]]) -> tuple[str, str]:
        partner_id = quote(str(entry.get("partner_id", "")), safe="")
        if not partner_id:
            raise Refused("the offer names no partner_id")
        body = {k: v for k, v in entry.items() if k != "partner_id"}
        if partner_id not in published:
            reply = await self.get(f"partners/{partner_id}/meeting-offers")
            if reply.status_code == 404 and self.dry_run:
                published[partner_id] = []  # the partner itself would be made first in this run
            elif reply.status_code != 200:
                raise Refused(problem(reply))
            else:
                published[partner_id] = reply.json()
        current = next((o for o in published[partner_id] if o.get("title") == body.get("title")), None)
        if current is None:
            await self.write("POST", f"partners/{partner_id}/meeting-offers", body, expected=201)
            return "created", ""
        wanted = {**MEETING_OFFER_DEFAULTS, **body}
        changes = {k: v for k, v in wanted.items() if current.get(k) != v}
        if not changes:
            return "unchanged", ""
        await self.write(
            "PATCH", f"partners/{partner_id}/meeting-offers/{quote(current['offer_id'], safe='')}", changes
        )
        return "updated", ", ".join(changes)

    # --- the caseworker roster ----------------------------------------------------------------

    async def roster(self, document: dict[str, Any]) -> None:
        try:
            current = await self.get("caseworkers", include_inactive="true")
            if current.status_code != 200:
                raise Refused(problem(current))
        except Refused as refused:
            self.report.note("caseworkers", "roster", "refused", str(refused))
            return
        have = {c["id"]: c for c in current.json()}
        for entry in document.get("caseworkers") or []:
            user = str(entry.get("id", "?"))
            body = {k: v for k, v in entry.items() if k != "id"}
            body.setdefault("active", True)
            before = have.get(user)
            comparable = {**body, "languages": sorted(set(body.get("languages") or []))}
            if before is not None and all(before.get(k) == v for k, v in comparable.items()):
                self.report.note("caseworker", user, "unchanged")
                continue
            try:
                await self.write("PUT", f"caseworkers/{quote(user, safe='')}", body)
            except Refused as refused:
                self.report.note("caseworker", user, "refused", str(refused))
            else:
                self.report.note("caseworker", user, "created" if before is None else "updated")


def normal(name: str, value: Any) -> Any:
    """A directory field as the API answers it, so that the file's spelling and the answer compare."""
    if name == "locations":
        return [{**LOCATION_DEFAULTS, **loc} for loc in value or []]
    if name == "contacts":
        return [{**CONTACT_DEFAULTS, **c} for c in value or []]
    return value


def instant(text: str, zone: ZoneInfo) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def course_body(spec: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """``POST /courses``'s body: a ``schedule`` (first session, weeks, hours: weekly, local time) becomes
    the sessions; given ``sessions`` are kept (times without a zone are local)."""
    body = {k: v for k, v in spec.items() if k != "schedule"}
    place = spec.get("location", COURSE_DEFAULTS["location"])
    if "schedule" in spec:
        plan = spec["schedule"]
        first = instant(str(plan["first"]), zone)
        length = timedelta(hours=float(plan["hours"]))
        body["sessions"] = []
        for week in range(int(plan["weeks"])):
            # Weekly in local time: across the change to summer time the course keeps its hour.
            local = (first.astimezone(zone).replace(tzinfo=None) + timedelta(weeks=week)).replace(tzinfo=zone)
            body["sessions"].append(
                {"starts_at": local.isoformat(), "ends_at": (local + length).isoformat(), "place": place}
            )
    else:
        body["sessions"] = [
            {
                **s,
                "starts_at": instant(s["starts_at"], zone).isoformat(),
                "ends_at": instant(s["ends_at"], zone).isoformat(),
            }
            for s in spec["sessions"]
        ]
    return body


def read(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a JSON object is expected")
    return document


async def load(client: httpx.AsyncClient, folder: Path, *, dry_run: bool = False, roster: Path | None = None) -> Report:
    """Load what ``folder`` holds (and ``roster`` if given) with ``client`` (the gateway, signed in as an admin)."""
    report = Report()
    loader = Loader(client, report, dry_run=dry_run)
    if (folder / "partners.json").exists():
        await loader.partners(read(folder / "partners.json").get("partners") or [])
    if (folder / "districts.json").exists():
        await loader.districts(read(folder / "districts.json"))
    if (folder / "blocks.json").exists():
        await loader.blocks(read(folder / "blocks.json"))
    if (folder / "courses.json").exists():
        await loader.courses(read(folder / "courses.json"))
    if (folder / "meeting_offers.json").exists():
        await loader.meeting_offers(read(folder / "meeting_offers.json"))
    roster = roster or (folder / "roster.json" if (folder / "roster.json").exists() else None)
    if roster is not None:
        await loader.roster(read(roster))
    return report


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> str:
    reply = await client.post("/auth/token", json={"username": username, "password": password})
    if reply.status_code != 200:
        raise Refused(f"signing in as {username} failed: {problem(reply)}")
    return str(reply.json()["access_token"])


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.load_reference_data", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="the city's folder, e.g. reference/landsberg/")
    parser.add_argument("--gateway", required=True, help="the gateway's address, e.g. http://127.0.0.1:8000")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--token-file", type=Path, help="a file holding an admin's bearer token")
    who.add_argument("--username", help="an admin of the gateway's embedded sign-in")
    parser.add_argument("--password-file", type=Path, help="the password (else $LOADER_PASSWORD, else a prompt)")
    parser.add_argument("--roster", type=Path, help="a roster file (default: roster.json in the folder, if there)")
    parser.add_argument("--dry-run", action="store_true", help="read and compare only: say what would change")
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None, transport: httpx.AsyncBaseTransport | None = None) -> int:
    args = arguments(argv)
    if not args.folder.is_dir() or not any((args.folder / name).exists() for name in FILES):
        print(f"{args.folder}: no folder with any of {', '.join(FILES)}", file=sys.stderr)
        return 2
    async with httpx.AsyncClient(base_url=args.gateway.rstrip("/"), transport=transport, timeout=30) as client:
        try:
            if args.token_file is not None:
                token = args.token_file.read_text().strip()
                if not token:
                    raise ValueError(f"{args.token_file} holds no token")
            else:
                password = (
                    args.password_file.read_text().strip()
                    if args.password_file
                    else os.environ.get("LOADER_PASSWORD") or getpass.getpass(f"Password of {args.username}: ")
                )
                token = await sign_in(client, args.username, password)
            client.headers["Authorization"] = f"Bearer {token}"
            report = await load(client, args.folder, dry_run=args.dry_run, roster=args.roster)
        except httpx.HTTPError as exc:
            print(f"stopped: {args.gateway} does not answer ({exc})", file=sys.stderr)
            return 1
        except (Refused, Unreachable, OSError, ValueError) as exc:  # sign-in, network, files
            print(f"stopped: {exc}", file=sys.stderr)
            return 1
    summary = ", ".join(f"{n} {key}" for key, n in sorted(report.counts.items()))
    print(("dry run, nothing written: " if args.dry_run else "") + (summary or "nothing to load"), flush=True)
    return 1 if report.refused else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
