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
from gateway.ui.kit import Kit, Reply
from gateway.ui.words import more_words

more_words({
    "de": {
        "export_title": "Auskunft nach Art. 15 DSGVO", "export_intro":
        "Alle Daten, die die Dienste der Plattform über diese Person speichern, und wer sie wann und wozu gelesen "
        "hat.", "export_json": "Als JSON herunterladen",
        "export_person_id": "Personenkennung", "export_exported_at": "Erstellt am",
        "export_exported_by": "Erstellt von",
        "export_section_registration": "Meldedaten, Haushalt, Bedarf und Einwilligungen (Registrierung)",
        "export_section_referral": "Fall, Vermerke, Ziele, Vermittlungen und Verlauf (Vermittlung)",
        "export_section_courses": "Kursanmeldungen, Anwesenheit und Bildungspass (Kurse)",
        "export_section_partners": "Webhook-Zustellungen an Partner (Partner)",
        "export_section_monitoring": "Statistik (Monitoring)",
        "export_monitoring": "Das Monitoring speichert nur anonyme Summen, keine Angaben zu einzelnen Personen.",
        "export_nothing": "Keine Einträge.", "export_access_log": "Zugriffsprotokoll",
        "export_at": "Zeitpunkt", "export_service": "Dienst", "export_actor": "Wer", "export_action": "Was",
        "export_purpose": "Wozu", "export_erased": "Die Daten der Person sind gelöscht; es bleibt nur der Nachweis.",
        "export_record": "Meldedaten",
        "export_kind_household": "Haushalt", "export_kind_needs_assessments": "Bedarfserhebungen",
        "export_kind_consents": "Einwilligungen", "export_kind_known_person": "Aus der Registrierung bekannt",
        "export_kind_cases": "Fälle", "export_kind_notes": "Vermerke", "export_kind_goals": "Ziele",
        "export_kind_referrals": "Vermittlungen", "export_kind_timeline": "Verlauf",
        "export_kind_learner": "Aus der Registrierung bekannt", "export_kind_enrolments": "Kursanmeldungen",
        "export_kind_attendance": "Anwesenheit", "export_kind_pass_entries": "Einträge im Bildungspass",
        "export_kind_issued_passes": "Ausgestellte Bildungspässe",
        "export_kind_webhook_deliveries": "Webhook-Zustellungen", "export_kind_erasure": "Löschung",
    },
    "en": {
        "export_title": "Access request under Art. 15 GDPR", "export_intro":
        "Everything the platform's services hold on this person, and who read it, when and why.",
        "export_json": "Download as JSON",
        "export_person_id": "Person id", "export_exported_at": "Made at", "export_exported_by": "Made by",
        "export_section_registration": "Record, household, needs and consents (registration)",
        "export_section_referral": "Case, notes, goals, referrals and timeline (referral)",
        "export_section_courses": "Course enrolments, attendance and education pass (courses)",
        "export_section_partners": "Webhook deliveries to partners (partners)",
        "export_section_monitoring": "Statistics (monitoring)",
        "export_monitoring": "Monitoring holds anonymous aggregates only, nothing about a single person.",
        "export_nothing": "No entries.", "export_access_log": "Access log",
        "export_at": "When", "export_service": "Service", "export_actor": "Who", "export_action": "What",
        "export_purpose": "Why", "export_erased": "The person's data has been erased; only the record of it is left.",
        "export_record": "Record",
        "export_kind_household": "Household", "export_kind_needs_assessments": "Needs assessments",
        "export_kind_consents": "Consents", "export_kind_known_person": "Known from registration",
        "export_kind_cases": "Cases", "export_kind_notes": "Notes", "export_kind_goals": "Goals",
        "export_kind_referrals": "Referrals", "export_kind_timeline": "Timeline",
        "export_kind_learner": "Known from registration", "export_kind_enrolments": "Course enrolments",
        "export_kind_attendance": "Attendance", "export_kind_pass_entries": "Education pass entries",
        "export_kind_issued_passes": "Issued education passes",
        "export_kind_webhook_deliveries": "Webhook deliveries", "export_kind_erasure": "Erasure",
    },
})  # fmt: skip

SECTIONS = ("registration", "referral", "courses", "partners")


def may_export(user: Identity) -> bool:
    return policy.decide("GET", "/api/v1/persons/_/export", user.roles) is True


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def exported(request: Request, person_id: str) -> tuple[Identity, dict[str, Any]] | Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        if not may_export(user) or policy.bent(person_id):
            return ui.refused(request, user, "forbidden", 403)
        answer = await privacy.merged(
            request.app.state.client, ui.upstream.routes, ui.upstream.identity_headers, user, person_id, "export",
            request.headers.get("x-request-id") or str(uuid.uuid4()),
        )  # fmt: skip
        if answer.status != 200:
            return ui.trouble(request, user, Reply(answer.status, None))
        body: dict[str, Any] = answer.body
        return user, body

    @router.get("/persons/{person_id}/export", response_class=HTMLResponse)
    async def export_page(person_id: str, request: Request) -> Response:
        found = await exported(request, person_id)
        if isinstance(found, Response):
            return found
        user, body = found
        sections = body["sections"]
        record = sections["registration"]
        return ui.render(
            request, "export.html", user=user, export=body, record=record, person=record.get("person"),
            kinds={s: sections[s].get("data", {}) for s in SECTIONS if s != "registration"},
            registration_kinds={
                "household": [record["household"]] if record.get("household") else [],
                "needs_assessments": record.get("needs_assessments", []),
                "consents": record.get("consents", []),
            },
            shown=shown, json_url=f"/ui/persons/{quote(person_id)}/export.json",
        )  # fmt: skip

    @router.get("/persons/{person_id}/export.json")
    async def export_json(person_id: str, request: Request) -> Response:
        found = await exported(request, person_id)
        if isinstance(found, Response):
            return found
        _, body = found
        return Response(
            json.dumps(body, ensure_ascii=False, indent=2), media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="auskunft-{body["person_id"]}.json"'},
        )  # fmt: skip


def shown(value: Any) -> str:
    """A stored value as the page shows it: lists and objects as compact JSON, nothing as a dash."""
    if value is None or value == "" or value == []:
        return "\u2013"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
