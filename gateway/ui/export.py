"""A person's data export (GDPR Art. 15) as a printable page, and as the JSON file the API gives.

The same merge as ``GET /api/v1/persons/{id}/export`` (``gateway.privacy``): registration decides whether the user
reaches the person, each service checks again and logs the export. The page is for the privacy officer and the
admin (the role policy of the API route); the person page links to it for them. Print styles in ``ui.css`` drop
the navigation and forms, so that the page prints as the letter's enclosure.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from chassis.identity import Identity
from gateway import policy, privacy
from gateway.ui.kit import Kit, Refused, Reply

SECTIONS = ("registration", "referral", "courses", "partners")


def may_export(user: Identity) -> bool:
    return policy.decide("GET", "/api/v1/persons/_/export", user.roles) is True


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def exported(request: Request, person_id: str) -> tuple[Identity, dict[str, Any]]:
        user = await ui.signed_in(request)
        if not may_export(user) or policy.bent(person_id):
            ui.refuse(request, user, "forbidden", 403)
        answer = await privacy.merged(
            request.app.state.client,
            ui.upstream.routes,
            ui.upstream.identity_headers,
            user,
            person_id,
            "export",
            request.headers.get("x-request-id") or str(uuid.uuid4()),
        )
        if answer.status != 200:
            raise Refused(ui.trouble(request, user, Reply(answer.status, None)))
        body: dict[str, Any] = answer.body
        return user, body

    @router.get("/persons/{person_id}/export", response_class=HTMLResponse)
    async def export_page(person_id: str, request: Request) -> Response:
        found = await exported(request, person_id)
        user, body = found
        sections = body["sections"]
        record = sections["registration"]
        return ui.render(
            request,
            "export.html",
            user=user,
            export=body,
            record=record,
            person=record.get("person"),
            kinds={s: sections[s].get("data", {}) for s in SECTIONS if s != "registration"},
            registration_kinds={
                "household": [record["household"]] if record.get("household") else [],
                "needs_assessments": record.get("needs_assessments", []),
                "consents": record.get("consents", []),
            },
            shown=shown,
            json_url=f"/ui/persons/{quote(person_id)}/export.json",
        )

    @router.get("/persons/{person_id}/export.json")
    async def export_json(person_id: str, request: Request) -> Response:
        found = await exported(request, person_id)
        _, body = found
        return Response(
            json.dumps(body, ensure_ascii=False, indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="auskunft-{body["person_id"]}.json"'},
        )


def shown(value: Any) -> str:
    """A stored value as the page shows it: lists and objects as compact JSON, nothing as a dash."""
    if value is None or value == "" or value == []:
        return "\u2013"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
