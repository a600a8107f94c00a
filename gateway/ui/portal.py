"""The partner portal: partner staff answer the referrals addressed to their organisation and look after
its API keys, webhooks and the webhook delivery log.

Everything goes through the partners service's own API for ``user.partner_id``; that service makes the
object-level check (``X-Partner-Id`` must name the partner in the path), so another organisation's key or
webhook is "not found" here as it is in the API. A new API key or webhook secret is shown once, in the
answer to the POST that made it (``Cache-Control: no-store``): never in a URL, a cookie or a log line.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from contracts import courses as course_events
from contracts import partners as partner_events
from contracts import referral as referral_events
from gateway.ui import names
from gateway.ui.kit import Kit, Reply, api_time, field_errors, problem_text
from gateway.ui.words import FIELD_ERRORS, more_words

DECLINE_REASONS = ("no_capacity", "not_eligible", "not_our_service", "already_supported", "other")
UNSUCCESSFUL_REASONS = ("client_refused", "no_capacity", "no_longer_needed", "could_not_contact_client", "other")
LOCAL_TIME = ZoneInfo("Europe/Berlin")

#: The scopes the partners service accepts for a key (its ``ApiScope``; a test keeps the two equal).
SCOPES = ("referrals:read", "referrals:write", "capacity:write", "webhooks:manage")

#: What a partner can subscribe to, grouped for the form: the partners service delivers the events of
#: these topics that name the partner (its ``DELIVERABLE_EVENT_TYPES``; a test keeps the two equal).
EVENT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (group, tuple(model.event_type for model in models if model.topic == topic))
    for group, topic, models in (
        ("referral", referral_events.REFERRALS_TOPIC, referral_events.EVENTS),
        ("partners", partner_events.PARTNERS_TOPIC, partner_events.EVENTS),
        ("courses", course_events.COURSES_TOPIC, course_events.EVENTS),
    )
)
EVENT_TYPES = frozenset(t for _, types in EVENT_GROUPS for t in types)
DELIVERY_STATUSES = ("pending", "delivered", "failed", "cancelled")
DELIVERIES_PER_PAGE = 50

#: Outcomes an action reports back to its page (``?notice=`` / ``?error=``); only these codes are shown,
#: so a crafted link cannot put text of its own on the page.
NOTICES = frozenset({"key_revoked", "webhook_deleted", "replayed"})
PROBLEMS = frozenset({"gone", "pending", "webhook_gone", "forbidden", "unavailable"})

more_words({
    "de": {
        "portal_sections": "Bereiche des Partnerportals", "portal_keys": "API-Schlüssel", "portal_webhooks": "Webhooks",
        "portal_deliveries": "Zustellprotokoll",
        "portal_no_partner": "Diese Seiten sind nur für Mitarbeitende einer Partnerorganisation.",
        "portal_keys_intro": "Mit einem API-Schlüssel ruft das Fachverfahren Ihrer Organisation die Schnittstelle "
        "der Plattform auf (Kopfzeile „Authorization: Bearer …“). Die Plattform speichert nur einen Hash: Den "
        "Schlüssel sehen Sie ein einziges Mal, direkt nach dem Anlegen.",
        "portal_key_name": "Bezeichnung", "portal_prefix": "Kennung", "portal_scopes": "Berechtigungen",
        "portal_created": "Angelegt", "portal_expires": "Läuft ab", "portal_last_used": "Zuletzt benutzt",
        "portal_active": "aktiv", "portal_revoked": "widerrufen", "portal_expired": "abgelaufen", "portal_never": "nie",
        "portal_no_expiry": "unbefristet", "portal_revoke_key": "Widerrufen",
        "portal_no_keys": "Noch keine API-Schlüssel.",
        "portal_new_key": "Neuen API-Schlüssel anlegen", "portal_expires_on": "Gültig bis einschließlich (optional)",
        "portal_create_key": "Schlüssel anlegen",
        "portal_scope_referrals_read": "Vermittlungen lesen",
        "portal_scope_referrals_write": "Vermittlungen beantworten (annehmen, ablehnen, abschließen)",
        "portal_scope_capacity_write": "Freie Plätze melden", "portal_scope_webhooks_manage": "Webhooks verwalten",
        "portal_key_created": "Der API-Schlüssel ist angelegt", "portal_once_title": "Nur jetzt sichtbar",
        "portal_key_once": "Kopieren Sie den Schlüssel jetzt und bewahren Sie ihn sicher auf, etwa im "
        "Passwort-Tresor Ihres Fachverfahrens. Er wird nie wieder angezeigt; die Plattform speichert nur einen Hash. "
        "Geht er verloren, widerrufen Sie ihn und legen einen neuen an.",
        "portal_your_key": "Ihr API-Schlüssel", "portal_back_keys": "Zurück zu den API-Schlüsseln",
        "portal_webhooks_intro": "Die Plattform meldet Ereignisse, die Ihre Organisation betreffen, an Ihre "
        "Empfangsadresse, signiert nach „Standard Webhooks“. Das Signatur-Geheimnis sehen Sie ein einziges Mal.",
        "portal_url": "Empfangsadresse (https)", "portal_event_types": "Ereignisse",
        "portal_description": "Beschreibung (optional)", "portal_new_webhook": "Neuen Webhook anlegen",
        "portal_create_webhook": "Webhook anlegen", "portal_rotate": "Neues Geheimnis", "portal_delete": "Löschen",
        "portal_no_webhooks": "Noch keine Webhooks.",
        "portal_webhook_created": "Der Webhook ist angelegt",
        "portal_secret_rotated": "Das Signatur-Geheimnis ist erneuert",
        "portal_secret_once": "Kopieren Sie das Geheimnis jetzt in Ihren Empfänger: Damit prüft er die Signatur "
        "jeder Zustellung. Es wird nie wieder angezeigt.",
        "portal_your_secret": "Signatur-Geheimnis",
        "portal_old_secret_until": "Das bisherige Geheimnis gilt noch bis",
        "portal_both_signatures": "Bis dahin tragen Zustellungen beide Signaturen.",
        "portal_back_webhooks": "Zurück zu den Webhooks",
        "portal_previous_secret": "altes Geheimnis gültig bis",
        "portal_deliveries_intro": "Jede Zustellung an Ihre Webhooks, die neueste zuerst. Nicht angenommene "
        "Zustellungen werden bis zu 24 Stunden lang wiederholt; „Erneut senden“ schickt eine Zustellung noch einmal.",
        "portal_attempts": "Versuche", "portal_replays": "erneut gesendet", "portal_next_attempt": "Nächster Versuch",
        "portal_last_code": "Letzte Antwort", "portal_replay": "Erneut senden", "portal_all": "alle",
        "portal_no_deliveries": "Noch keine Zustellungen.", "portal_previous_page": "Vorherige Seite",
        "portal_next_page": "Nächste Seite", "portal_page": "Seite", "portal_of": "von",
        "portal_deleted_webhook": "gelöschter Webhook", "portal_webhook": "Webhook",
        "portal_st_pending": "wird zugestellt", "portal_st_delivered": "zugestellt",
        "portal_st_failed": "fehlgeschlagen", "portal_st_cancelled": "abgebrochen",
        "portal_group_referral": "Vermittlungen an Ihre Organisation",
        "portal_group_partners": "Ihr Eintrag im Partnerverzeichnis", "portal_group_courses": "Ihre Kurse",
        "portal_ev_referral_proposed": "Vermittlung vorgeschlagen", "portal_ev_referral_sent": "Vermittlung gesendet",
        "portal_ev_referral_accepted": "Vermittlung angenommen", "portal_ev_referral_declined": "Vermittlung abgelehnt",
        "portal_ev_referral_started": "Vermittlung begonnen",
        "portal_ev_referral_completed": "Vermittlung abgeschlossen",
        "portal_ev_referral_revoked": "Vermittlung zurückgezogen",
        "portal_ev_referral_escalated": "Vermittlung eskaliert",
        "portal_ev_referral_expired": "Vermittlung abgelaufen",
        "portal_ev_referral_referred_elsewhere": "Vermittlung weitervermittelt",
        "portal_ev_partner_registered": "Partner eingetragen", "portal_ev_partner_updated": "Eintrag geändert",
        "portal_ev_partner_capacity_changed": "Freie Plätze geändert",
        "portal_ev_service_offered": "Angebot eingetragen",
        "portal_ev_service_withdrawn": "Angebot zurückgenommen", "portal_ev_course_scheduled": "Kurs geplant",
        "portal_ev_course_updated": "Kurs geändert", "portal_ev_course_cancelled": "Kurs abgesagt",
        "portal_unsafe_url": "Diese Adresse kann keine Webhooks empfangen. Erlaubt sind nur öffentlich erreichbare "
        "https-Adressen, keine lokalen, privaten oder Loopback-Adressen.",
        "portal_bad_url": "Bitte eine vollständige Adresse angeben, z. B. https://fachverfahren.example.org/webhooks.",
        "portal_pick_scope": "Bitte mindestens eine Berechtigung wählen.",
        "portal_pick_event": "Bitte mindestens ein Ereignis wählen.",
        "portal_future_date": "Bitte ein Datum ab heute angeben.", "portal_technical": "Technischer Hinweis",
        "portal_done_key_revoked": "Der API-Schlüssel ist widerrufen; er wirkt in wenigen Sekunden nicht mehr.",
        "portal_done_webhook_deleted": "Der Webhook ist gelöscht.",
        "portal_done_replayed": "Die Zustellung wird erneut gesendet.",
        "portal_problem_gone": "Nicht gefunden: Das gehört nicht zu Ihrer Organisation oder ist schon entfernt.",
        "portal_problem_pending": "Diese Zustellung wird gerade noch versucht; senden Sie sie danach erneut.",
        "portal_problem_webhook_gone": "Der Webhook dieser Zustellung ist gelöscht.",
        "portal_open_referral": "Vermittlung öffnen", "portal_referral": "Vermittlung",
        "portal_contact": "Kontaktdaten der Person",
        "portal_contact_intro": "Freigegeben durch die Einwilligung der Person, nur für diese Vermittlung. Jeder "
        "Abruf wird protokolliert; bitte nicht weitergeben.",
        "portal_consent_withdrawn": "Die Person hat ihre Einwilligung widerrufen. Ihre Kontaktdaten werden nicht "
        "mehr angezeigt: Nehmen Sie bitte keinen Kontakt mehr auf und schließen Sie die Vermittlung ab.",
        "portal_no_consent": "Für Ihre Organisation liegt keine gültige Einwilligung vor; die Kontaktdaten werden "
        "deshalb nicht angezeigt. Die Integrationslotsin oder der Integrationslotse holt sie bei Bedarf ein.",
        "portal_contact_unavailable": "Die Kontaktdaten sind gerade nicht abrufbar. Bitte laden Sie die Seite "
        "gleich noch einmal.",
        "portal_name": "Name", "portal_preferred_language": "Bevorzugte Sprache", "portal_languages": "Sprachen",
        "portal_list_withdrawn": "Einwilligung widerrufen: bitte keinen Kontakt mehr aufnehmen",
        "portal_list_no_name": "Name nicht freigegeben", "portal_names_intro": "Namen stehen hier, solange die "
        "Einwilligung der Person für Ihre Organisation gilt; jeder Abruf wird protokolliert.",
        "portal_facts": "Was für Ihr Angebot zählt", "portal_no_facts": "Keine weiteren Angaben.",
        "portal_back_referrals": "Zurück zu den Vermittlungen", "portal_answer": "Antworten",
        "portal_decline_reason": "Grund der Ablehnung", "portal_completion_reason": "Grund (bei Misserfolg)",
        "portal_declined_because": "Abgelehnt", "portal_outcome_was": "Ergebnis",
        "portal_state_accepted": "Angenommen: Nehmen Sie Kontakt auf und beginnen Sie, sobald die Person da war.",
        "portal_state_in_progress": "In Arbeit: Schließen Sie die Vermittlung mit dem Ergebnis ab, wenn sie "
        "beendet ist.",
        "portal_fact_german_level": "Deutschkenntnisse", "portal_fact_age_band": "Altersgruppe",
        "portal_fact_languages": "Sprachen",
        "portal_fact_need_categories": "Bedarfe", "portal_fact_residence_status_group": "Aufenthaltsstatus",
        "portal_fact_gender": "Geschlecht", "portal_fact_childcare_needed": "Kinderbetreuung nötig",
        "portal_fact_has_children": "Hat Kinder",
        "portal_need_language": "Deutsch lernen", "portal_need_education": "Bildung", "portal_need_employment":
        "Arbeit", "portal_need_recognition": "Anerkennung eines Abschlusses", "portal_need_counselling": "Beratung",
        "portal_need_housing": "Wohnen", "portal_need_childcare": "Kinderbetreuung", "portal_need_health": "Gesundheit",
        "portal_need_participation": "Teilhabe",
    },
    "en": {
        "portal_sections": "Partner portal sections", "portal_keys": "API keys", "portal_webhooks": "Webhooks",
        "portal_deliveries": "Delivery log",
        "portal_no_partner": "These pages are for staff of a partner organisation only.",
        "portal_keys_intro": "With an API key your organisation's case system calls the platform's API (header "
        "\"Authorization: Bearer …\"). The platform keeps only a hash: you see the key once, right after creating it.",
        "portal_key_name": "Name", "portal_prefix": "Prefix", "portal_scopes": "Scopes",
        "portal_created": "Created", "portal_expires": "Expires", "portal_last_used": "Last used",
        "portal_active": "active", "portal_revoked": "revoked", "portal_expired": "expired", "portal_never": "never",
        "portal_no_expiry": "no expiry", "portal_revoke_key": "Revoke", "portal_no_keys": "No API keys yet.",
        "portal_new_key": "Create an API key", "portal_expires_on": "Valid through (optional)",
        "portal_create_key": "Create key",
        "portal_scope_referrals_read": "Read referrals",
        "portal_scope_referrals_write": "Answer referrals (accept, decline, complete)",
        "portal_scope_capacity_write": "Report free places", "portal_scope_webhooks_manage": "Manage webhooks",
        "portal_key_created": "The API key has been created", "portal_once_title": "Shown only now",
        "portal_key_once": "Copy the key now and keep it safe, for example in your case system's password vault. "
        "It is never shown again; the platform keeps only a hash. If it is lost, revoke it and create a new one.",
        "portal_your_key": "Your API key", "portal_back_keys": "Back to the API keys",
        "portal_webhooks_intro": "The platform sends the events that concern your organisation to your receiving "
        "URL, signed as \"Standard Webhooks\". You see the signing secret once.",
        "portal_url": "Receiving URL (https)", "portal_event_types": "Events",
        "portal_description": "Description (optional)", "portal_new_webhook": "Create a webhook",
        "portal_create_webhook": "Create webhook", "portal_rotate": "New secret", "portal_delete": "Delete",
        "portal_no_webhooks": "No webhooks yet.",
        "portal_webhook_created": "The webhook has been created",
        "portal_secret_rotated": "The signing secret has been renewed",
        "portal_secret_once": "Copy the secret into your receiver now: it checks the signature of every delivery "
        "with it. It is never shown again.",
        "portal_your_secret": "Signing secret",
        "portal_old_secret_until": "The previous secret stays valid until",
        "portal_both_signatures": "Until then, deliveries carry both signatures.",
        "portal_back_webhooks": "Back to the webhooks",
        "portal_previous_secret": "previous secret valid until",
        "portal_deliveries_intro": "Every delivery to your webhooks, newest first. Deliveries that are not accepted "
        "are retried for up to 24 hours; \"Send again\" sends a delivery once more.",
        "portal_attempts": "Attempts", "portal_replays": "sent again", "portal_next_attempt": "Next attempt",
        "portal_last_code": "Last response", "portal_replay": "Send again", "portal_all": "all",
        "portal_no_deliveries": "No deliveries yet.", "portal_previous_page": "Previous page",
        "portal_next_page": "Next page", "portal_page": "Page", "portal_of": "of",
        "portal_deleted_webhook": "deleted webhook", "portal_webhook": "Webhook",
        "portal_st_pending": "pending", "portal_st_delivered": "delivered",
        "portal_st_failed": "failed", "portal_st_cancelled": "cancelled",
        "portal_group_referral": "Referrals to your organisation",
        "portal_group_partners": "Your entry in the partner directory", "portal_group_courses": "Your courses",
        "portal_ev_referral_proposed": "Referral proposed", "portal_ev_referral_sent": "Referral sent",
        "portal_ev_referral_accepted": "Referral accepted", "portal_ev_referral_declined": "Referral declined",
        "portal_ev_referral_started": "Referral started", "portal_ev_referral_completed": "Referral completed",
        "portal_ev_referral_revoked": "Referral revoked", "portal_ev_referral_escalated": "Referral escalated",
        "portal_ev_referral_expired": "Referral expired",
        "portal_ev_referral_referred_elsewhere": "Referral referred elsewhere",
        "portal_ev_partner_registered": "Partner registered", "portal_ev_partner_updated": "Entry changed",
        "portal_ev_partner_capacity_changed": "Free places changed", "portal_ev_service_offered": "Service offered",
        "portal_ev_service_withdrawn": "Service withdrawn", "portal_ev_course_scheduled": "Course scheduled",
        "portal_ev_course_updated": "Course changed", "portal_ev_course_cancelled": "Course cancelled",
        "portal_unsafe_url": "This URL cannot receive webhooks. Only publicly reachable https URLs are allowed, "
        "no local, private or loopback addresses.",
        "portal_bad_url": "Please give a complete URL, e.g. https://case-system.example.org/webhooks.",
        "portal_pick_scope": "Please choose at least one scope.",
        "portal_pick_event": "Please choose at least one event.",
        "portal_future_date": "Please give a date from today on.", "portal_technical": "Technical detail",
        "portal_done_key_revoked": "The API key is revoked; it stops working within a few seconds.",
        "portal_done_webhook_deleted": "The webhook is deleted.",
        "portal_done_replayed": "The delivery is being sent again.",
        "portal_problem_gone": "Not found: it does not belong to your organisation or has been removed already.",
        "portal_problem_pending": "This delivery is still being attempted; send it again after that.",
        "portal_problem_webhook_gone": "The webhook of this delivery has been deleted.",
        "portal_open_referral": "Open referral", "portal_referral": "Referral",
        "portal_contact": "The person's contact data",
        "portal_contact_intro": "Shared under the person's consent, for this referral only. Every read is logged; "
        "please do not pass it on.",
        "portal_consent_withdrawn": "The person has withdrawn their consent. Their contact data is no longer shown: "
        "please do not contact them any more and complete the referral.",
        "portal_no_consent": "There is no consent in force for your organisation, so the contact data is not shown. "
        "The integration navigator asks for it where needed.",
        "portal_contact_unavailable": "The contact data cannot be read just now. Please reload the page shortly.",
        "portal_name": "Name", "portal_preferred_language": "Preferred language", "portal_languages": "Languages",
        "portal_list_withdrawn": "Consent withdrawn: please do not contact the person any more",
        "portal_list_no_name": "Name not shared", "portal_names_intro": "Names are shown while the person's "
        "consent for your organisation is in force; every read is logged.",
        "portal_facts": "What matters for your service", "portal_no_facts": "Nothing more.",
        "portal_back_referrals": "Back to the referrals", "portal_answer": "Answer",
        "portal_decline_reason": "Reason for declining", "portal_completion_reason": "Reason (if unsuccessful)",
        "portal_declined_because": "Declined", "portal_outcome_was": "Outcome",
        "portal_state_accepted": "Accepted: contact the person and start once they have come.",
        "portal_state_in_progress": "In progress: complete the referral with its outcome when it has ended.",
        "portal_fact_german_level": "German", "portal_fact_age_band": "Age group", "portal_fact_languages": "Languages",
        "portal_fact_need_categories": "Needs", "portal_fact_residence_status_group": "Residence status",
        "portal_fact_gender": "Gender", "portal_fact_childcare_needed": "Childcare needed",
        "portal_fact_has_children": "Has children",
        "portal_need_language": "learning German", "portal_need_education": "education", "portal_need_employment":
        "work", "portal_need_recognition": "recognition of a qualification", "portal_need_counselling": "counselling",
        "portal_need_housing": "housing", "portal_need_childcare": "childcare", "portal_need_health": "health",
        "portal_need_participation": "participation",
    },
})  # fmt: skip


def event_name(event_type: str) -> str:
    """``de.landsberg.integration.referral.referral_sent.v1`` -> ``referral_sent``."""
    parts = event_type.split(".")
    return parts[-2] if len(parts) >= 2 else event_type


def problem_kind(reply: Reply) -> str:
    body = reply.body if isinstance(reply.body, dict) else {}
    return str(body.get("type", "")).rsplit("/", 1)[-1]


def outcome(reply: Reply) -> str:
    """An action's failure as one of ``PROBLEMS``."""
    if reply.status == 404:
        return "gone"
    if reply.status in (401, 403):
        return "forbidden"
    if reply.status == 409:
        return "pending" if problem_kind(reply) == "delivery-pending" else "webhook_gone"
    return "unavailable"


def expiry_of(text: str) -> tuple[str | None, bool]:
    """The form's "valid through" date as the API's ``expires_at``: the end of that day in Landsberg.

    Returns (expires_at or None, whether the text was a date at all).
    """
    if not text:
        return None, True
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None, False
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=LOCAL_TIME).isoformat(), True


def form_errors(reply: Reply, lang: str, words: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    """The API's refusal as one message per form field (``fields``: API field -> form field), in the UI's language."""
    errors = field_errors(reply.body if isinstance(reply.body, dict) else {}, lang, fields, unmatched=None)
    # The portal's own words where the general message would not say what to do.
    specific = {"scopes": words["portal_pick_scope"], "event_types": words["portal_pick_event"],
                "expires_on": FIELD_ERRORS[lang]["date_parsing"]}  # fmt: skip
    errors |= {field: specific[field] for field in errors if field in specific}
    if "url" in errors and errors["url"] != FIELD_ERRORS[lang]["missing"]:
        errors["url"] = words["portal_bad_url"]
    if problem_kind(reply) == "unsafe-webhook-url":
        errors["url"] = words["portal_unsafe_url"]
    if not errors and "expires_at" in problem_text(reply):
        errors["expires_on"] = words["portal_future_date"]
    if not errors:
        errors["form"] = words["failed"] if reply.status == 422 else words["unavailable"]
    return errors


async def signed_in_partner(ui: Kit, request: Request) -> tuple[Identity, str] | Response:
    """The signed-in user and their partner organisation; 403 for a user of no partner."""
    user = await ui.signed_in(request)
    if isinstance(user, Response):
        return user
    if not user.partner_id:
        return ui.refused(request, user, "portal_no_partner", 403)
    return user, user.partner_id


async def posted_by_partner(ui: Kit, request: Request) -> tuple[Identity, str, dict[str, str]] | Response:
    """A form posted by a partner organisation's user (checked as ``ui.posted`` does), with their partner id."""
    posted = await ui.posted(request)
    if isinstance(posted, Response):
        return posted
    user, form = posted
    if not user.partner_id:
        return ui.refused(request, user, "portal_no_partner", 403)
    return user, user.partner_id, form


def add_routes(router: APIRouter, ui: Kit) -> None:
    def page(request: Request, template: str, user: Identity, status: int = 200, **context: Any) -> HTMLResponse:
        """A portal page; its own notice and error (from the codes an action redirected with) replace base.html's."""
        words = ui.words(request)
        lang = ui.lang_of(request)
        notice, problem = request.query_params.get("notice", ""), request.query_params.get("error", "")

        def when(value: Any) -> str:
            return names.moment(value, lang) if api_time(value) is not None else ""

        return ui.render(
            request, template, status, user=user, notice=None, error=None, when=when, event_name=event_name,
            portal_notice=words[f"portal_done_{notice}"] if notice in NOTICES else None,
            portal_error=words[problem] if problem in ("forbidden", "unavailable")
            else words[f"portal_problem_{problem}"] if problem in PROBLEMS else None,
            **context,
        )  # fmt: skip

    def once(response: HTMLResponse) -> HTMLResponse:
        # A page with a secret: kept by no cache, so "back" does not show it again from disk.
        response.headers["Cache-Control"] = "no-store"
        return response

    async def partner_user(request: Request) -> tuple[Identity, str] | Response:
        return await signed_in_partner(ui, request)

    async def partner_form(request: Request) -> tuple[Identity, str, dict[str, str]] | Response:
        return await posted_by_partner(ui, request)

    def after(target: str, reply: Reply, notice: str) -> RedirectResponse:
        return ui.back(target, notice=notice) if reply.ok else ui.back(target, error=outcome(reply))

    # --- referrals ---------------------------------------------------------------------------

    async def organisation(request: Request, user: Identity) -> str | None:
        """The signed-in partner's name from the public directory (its id when the directory cannot say)."""
        if not user.partner_id:
            return None
        found = await ui.call(request, user, "GET", f"partners/{quote(user.partner_id)}")
        return str(found.body["name"]) if found.ok and isinstance(found.body, dict) else user.partner_id

    @router.get("/partner", response_class=HTMLResponse)
    async def portal(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        # Names where the consent allows: referral asks registration once for the page (each read logged).
        found = await ui.call(request, user, "GET", "partner/referrals", params={"page_size": 200, "names": "true"})
        if not found.ok:
            return ui.trouble(request, user, found)
        return ui.render(request, "portal.html", user=user, referrals=found.items(), reasons=DECLINE_REASONS,
                         unsuccessful_reasons=UNSUCCESSFUL_REASONS,
                         organisation=await organisation(request, user))  # fmt: skip

    @router.get("/partner/referrals/{referral_id}", response_class=HTMLResponse)
    async def portal_referral(referral_id: str, request: Request) -> Response:
        """One referral with the contact data the person's consent allows (the referral service asks registration,
        which checks the consent again and logs the read), or why there is none."""
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        found = await ui.call(request, user, "GET", f"partner/referrals/{quote(referral_id, safe='')}")
        if not found.ok:
            return ui.trouble(request, user, found)
        referral, contact = found.body["referral"], found.body.get("personal_data")
        status = str(found.body.get("personal_data_status", ""))
        contact_state = (
            "withdrawn" if referral.get("consent_withdrawn") else "shared" if contact
            else "unavailable" if "unavailable" in status or status.startswith("not available") else "no_consent"
        )  # fmt: skip
        return ui.render(request, "portal_referral.html", user=user, r=referral, contact=contact,
                         contact_state=contact_state, reasons=DECLINE_REASONS,
                         unsuccessful_reasons=UNSUCCESSFUL_REASONS,
                         organisation=await organisation(request, user))  # fmt: skip

    @router.post("/partner/referrals/{referral_id}/{action}")
    async def portal_action(referral_id: str, action: str, request: Request) -> Response:
        posted = await ui.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        body: dict[str, Any] | None = None
        if action == "decline":
            body = {"reason": form.get("reason", "")}
        elif action == "complete":
            body = {"outcome": form.get("outcome", "successful")}
            if form.get("reason"):
                body["reason"] = form["reason"]
        elif action not in ("accept", "start"):
            return ui.refused(request, user, "not_found", 404)
        reply = await ui.call(request, user, "POST", f"partner/referrals/{quote(referral_id, safe='')}/{action}",
                              json=body)  # fmt: skip
        # Back to the page the button was on: the list, or the referral's own page.
        own_page = f"/ui/partner/referrals/{quote(referral_id, safe='')}"
        target = own_page if form.get("back") == "referral" else "/ui/partner"
        return ui.after(target, reply)

    # --- API keys ----------------------------------------------------------------------------

    async def keys_page(request: Request, user: Identity, partner_id: str, status: int = 200,
                        values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                        detail: str | None = None) -> Response:  # fmt: skip
        found = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}/api-keys")
        if not found.ok:
            return ui.trouble(request, user, found)
        now = datetime.now(UTC)
        keys = []
        for key in reversed(found.body or []):  # newest first
            expires = api_time(key.get("expires_at"))
            state = "revoked" if key.get("revoked_at") else "expired" if expires and expires <= now else "active"
            keys.append({**key, "state": state})
        return page(request, "portal_keys.html", user, status, keys=keys, scopes=SCOPES,
                    values=values or {"scopes": []}, errors=errors or {}, detail=detail)  # fmt: skip

    @router.get("/partner/api-keys", response_class=HTMLResponse)
    async def api_keys(request: Request) -> Response:
        found = await partner_user(request)
        if isinstance(found, Response):
            return found
        return await keys_page(request, *found)

    @router.post("/partner/api-keys", response_class=HTMLResponse)
    async def create_api_key(request: Request) -> Response:
        posted = await partner_form(request)
        if isinstance(posted, Response):
            return posted
        user, partner_id, form = posted
        values: dict[str, Any] = {
            "name": form.get("name", "").strip(),
            "scopes": await ui.form_list(request, "scopes"),
            "expires_on": form.get("expires_on", "").strip(),
        }
        expires_at, is_date = expiry_of(values["expires_on"])
        words, lang = ui.words(request), ui.lang_of(request)
        if not is_date:
            return await keys_page(request, user, partner_id, 422, values,
                                   {"expires_on": FIELD_ERRORS[lang]["date_parsing"]})  # fmt: skip
        body: dict[str, Any] = {"name": values["name"], "scopes": values["scopes"]}
        if expires_at:
            body["expires_at"] = expires_at
        reply = await ui.call(request, user, "POST", f"partners/{quote(partner_id)}/api-keys", json=body)
        if reply.ok:
            return once(page(request, "portal_key_created.html", user, key=reply.body))
        if reply.status != 422:
            return ui.trouble(request, user, reply)
        errors = form_errors(reply, lang, words, {"name": "name", "scopes": "scopes", "expires_at": "expires_on"})
        return await keys_page(request, user, partner_id, 422, values, errors, problem_text(reply))

    @router.post("/partner/api-keys/{key_id}/revoke")
    async def revoke_api_key(key_id: str, request: Request) -> Response:
        posted = await partner_form(request)
        if isinstance(posted, Response):
            return posted
        user, partner_id, _ = posted
        path = f"partners/{quote(partner_id)}/api-keys/{quote(key_id, safe='')}"
        reply = await ui.call(request, user, "DELETE", path)
        return after("/ui/partner/api-keys", reply, "key_revoked")

    # --- webhooks ----------------------------------------------------------------------------

    async def webhooks_page(request: Request, user: Identity, partner_id: str, status: int = 200,
                            values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                            detail: str | None = None) -> Response:  # fmt: skip
        found = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}/webhooks")
        if not found.ok:
            return ui.trouble(request, user, found)
        return page(request, "portal_webhooks.html", user, status, webhooks=found.body or [], groups=EVENT_GROUPS,
                    values=values or {"event_types": []}, errors=errors or {}, detail=detail)  # fmt: skip

    @router.get("/partner/webhooks", response_class=HTMLResponse)
    async def webhooks(request: Request) -> Response:
        found = await partner_user(request)
        if isinstance(found, Response):
            return found
        return await webhooks_page(request, *found)

    @router.post("/partner/webhooks", response_class=HTMLResponse)
    async def create_webhook(request: Request) -> Response:
        posted = await partner_form(request)
        if isinstance(posted, Response):
            return posted
        user, partner_id, form = posted
        values: dict[str, Any] = {
            "url": form.get("url", "").strip(),
            "event_types": await ui.form_list(request, "event_types"),
            "description": form.get("description", "").strip(),
        }
        body = {k: v for k, v in values.items() if v or k != "description"}
        reply = await ui.call(request, user, "POST", f"partners/{quote(partner_id)}/webhooks", json=body)
        if reply.ok:
            return once(page(request, "portal_secret.html", user, created=True, webhook=reply.body,
                             secret=reply.body["secret"], valid_until=None))  # fmt: skip
        if reply.status != 422:
            return ui.trouble(request, user, reply)
        fields = {"url": "url", "event_types": "event_types", "description": "description"}
        errors = form_errors(reply, ui.lang_of(request), ui.words(request), fields)
        return await webhooks_page(request, user, partner_id, 422, values, errors, problem_text(reply))

    @router.post("/partner/webhooks/{webhook_id}/rotate-secret", response_class=HTMLResponse)
    async def rotate_secret(webhook_id: str, request: Request) -> Response:
        posted = await partner_form(request)
        if isinstance(posted, Response):
            return posted
        user, partner_id, _ = posted
        path = f"partners/{quote(partner_id)}/webhooks/{quote(webhook_id, safe='')}/rotate-secret"
        reply = await ui.call(request, user, "POST", path)
        if not reply.ok:
            return ui.back("/ui/partner/webhooks", error=outcome(reply))
        listed = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}/webhooks")
        webhook = next((w for w in (listed.body if listed.ok else None) or [] if w["webhook_id"] == webhook_id), None)
        secret, valid_until = reply.body["secret"], reply.body["previous_secret_valid_until"]
        return once(page(request, "portal_secret.html", user, created=False, webhook=webhook, secret=secret,
                         valid_until=valid_until))  # fmt: skip

    @router.post("/partner/webhooks/{webhook_id}/delete")
    async def delete_webhook(webhook_id: str, request: Request) -> Response:
        posted = await partner_form(request)
        if isinstance(posted, Response):
            return posted
        user, partner_id, _ = posted
        path = f"partners/{quote(partner_id)}/webhooks/{quote(webhook_id, safe='')}"
        reply = await ui.call(request, user, "DELETE", path)
        return after("/ui/partner/webhooks", reply, "webhook_deleted")

    # --- the delivery log --------------------------------------------------------------------

    @router.get("/partner/webhooks/deliveries", response_class=HTMLResponse)
    async def deliveries(request: Request) -> Response:
        found = await partner_user(request)
        if isinstance(found, Response):
            return found
        user, partner_id = found
        status = request.query_params.get("status", "")
        status = status if status in DELIVERY_STATUSES else ""
        number = request.query_params.get("page", "1")
        current = int(number) if number.isdigit() and 0 < int(number) <= 100_000 else 1
        params: dict[str, Any] = {"page": current, "page_size": DELIVERIES_PER_PAGE}
        if status:
            params["status"] = status
        log = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}/webhooks/deliveries", params=params)
        if not log.ok:
            return ui.trouble(request, user, log)
        hooks = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}/webhooks")
        urls = {w["webhook_id"]: w["url"] for w in (hooks.body if hooks.ok else None) or []}
        total = int(log.body.get("total", 0))
        pages = max(1, -(-total // DELIVERIES_PER_PAGE))
        return page(request, "portal_deliveries.html", user, deliveries=log.items(), urls=urls, chosen=status,
                    statuses=DELIVERY_STATUSES, current=current, pages=pages, total=total)  # fmt: skip

    @router.post("/partner/webhooks/deliveries/{delivery_id}/replay")
    async def replay_delivery(delivery_id: str, request: Request) -> Response:
        posted = await partner_form(request)
        if isinstance(posted, Response):
            return posted
        user, partner_id, form = posted
        path = f"partners/{quote(partner_id)}/webhooks/deliveries/{quote(delivery_id, safe='')}/replay"
        reply = await ui.call(request, user, "POST", path)
        # Back to the page and filter the button was on.
        status = form.get("status", "")
        number = form.get("page", "")
        query = "&".join(
            part for part in (
                f"status={status}" if status in DELIVERY_STATUSES else "",
                f"page={number}" if number.isdigit() and len(number) <= 6 else "",
            ) if part
        )  # fmt: skip
        target = "/ui/partner/webhooks/deliveries"
        redirect = after(target, reply, "replayed")
        if query:
            redirect.headers["location"] += f"&{query}"
        return redirect
