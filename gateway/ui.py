"""The web UI: server-rendered pages (Jinja2, autoescaped), German by default with an English switch.

Every page reads and writes through the public API's own road: the role x route matrix of
``policy``, the per-user rate limit, and the caller's identity signed into the internal header
exactly as the gateway's ``proxy`` does; the services make the object-level checks. The UI holds
no business rule of its own. Browser sessions: the sign-in's token in an HttpOnly, SameSite=Lax
cookie (Secure outside development); every form carries a CSRF token (double submit).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from chassis import identity as internal
from chassis.identity import Identity
from gateway import policy
from gateway.auth import Unauthenticated

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "lip_session"
CSRF_COOKIE = "lip_csrf"
LANG_COOKIE = "lip_lang"
LANGS = ("de", "en")
INFO_LANGS = ("de", "en", "ar", "fa", "ro", "ru", "tr", "uk")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# --- words ---------------------------------------------------------------------------------

WORDS: dict[str, dict[str, str]] = {
    "de": {
        "app": "Integrationsplattform Landsberg am Lech", "skip": "Zum Inhalt springen",
        "nav": "Hauptnavigation", "home": "Start", "courses": "Kursangebot", "partners": "Partnerverzeichnis",
        "info": "Informationen für Neuzugezogene", "sign_in": "Anmelden", "sign_out": "Abmelden",
        "username": "Benutzername", "password": "Passwort", "signed_in_as": "Angemeldet als",
        "bad_sign_in": "Benutzername oder Passwort ist falsch.", "too_many": "Zu viele Versuche; bitte später erneut.",
        "dashboard": "Übersicht", "my_cases": "Fälle meines Teams", "no_cases": "Keine offenen Fälle.",
        "waiting": "Vermittlungen, die auf Antwort des Partners warten", "escalations": "Eskalationen",
        "proposed": "Vorgeschlagene Vermittlungen (noch nicht gesendet)", "none": "Keine.",
        "register": "Neuzugezogene Person anmelden", "register_intro": "Pflichtfelder sind mit * markiert.",
        "given_names": "Vornamen", "family_name": "Familienname", "birth_date": "Geburtsdatum",
        "gender": "Geschlecht", "nationality": "Staatsangehörigkeit (ISO-Code, z. B. SY)",
        "languages": "Sprachen (Codes, durch Komma getrennt, z. B. ar, en)",
        "preferred_language": "Bevorzugte Sprache (Code)", "residence_status_group": "Aufenthaltsstatus",
        "arrival_date": "Ankunftsdatum", "street": "Straße", "house_number": "Hausnummer",
        "postal_code": "Postleitzahl", "district": "Ortsteil", "phone": "Telefon", "email": "E-Mail",
        "address": "Adresse", "contact": "Kontakt", "person": "Person", "save": "Anmelden und speichern",
        "errors_title": "Bitte die markierten Angaben prüfen.",
        "duplicate_title": "Möglicherweise schon angemeldet",
        "duplicate_text": "Eine Person mit gleichem Namen und Geburtsdatum ist bereits angemeldet.",
        "different_person": "Das ist eine andere Person: trotzdem anmelden",
        "registered": "Die Person ist angemeldet.", "case": "Fall", "cases": "Fälle", "status": "Status",
        "opened": "Eröffnet", "caseworker": "Integrationslotse", "team": "Team", "open_case": "Fall öffnen",
        "referrals": "Vermittlungen", "service": "Leistung", "partner": "Partner", "reason": "Grund",
        "send": "Senden", "revoke": "Zurückziehen", "timeline": "Verlauf", "goals": "Integrationsplan",
        "no_goals": "Noch keine Ziele.", "due": "Fällig", "consents": "Einwilligungen",
        "no_consents": "Keine Einwilligungen.", "give_consent": "Einwilligung erfassen",
        "partner_id": "Partner (Kennung, z. B. jobcenter-landsberg)", "purpose": "Zweck",
        "record": "Erfassen", "in_force": "gültig", "withdrawn": "widerrufen", "done": "Erledigt.",
        "statistics": "Statistik", "statistics_intro": "Anonymisierte Kennzahlen nach den vier Dimensionen "
        "der Integration; Zellen unter fünf Personen sind unterdrückt.", "period": "Zeitraum",
        "period_hint": "Monat (2026-11), Quartal (2026-Q4) oder Jahr (2026)", "show": "Anzeigen",
        "report_html": "Bericht an den Stadtrat (HTML, druckbar als PDF)", "report_csv": "Kennzahlen als CSV",
        "bad_period": "Bitte einen Zeitraum wie 2026-11, 2026-Q4 oder 2026 angeben.",
        "failed": "Das ging nicht", "portal": "Partnerportal", "your_referrals": "Vermittlungen an Ihre Organisation",
        "accept": "Annehmen", "decline": "Ablehnen", "complete": "Abschließen", "start": "Beginnen",
        "outcome": "Ergebnis", "free_seats": "Freie Plätze", "waiting_list": "Warteliste", "title": "Titel",
        "level": "Ziel-Niveau", "location": "Ort", "category": "Kategorie", "services": "Angebote",
        "free_places": "freie Plätze", "website": "Webseite", "language": "Sprache",
        "choose_language": "Sprache wählen", "forbidden": "Dafür fehlt Ihnen die Berechtigung.",
        "csrf": "Das Formular ist abgelaufen. Bitte laden Sie die Seite neu und versuchen Sie es erneut.",
        "unavailable": "Ein Dienst ist gerade nicht erreichbar. Bitte versuchen Sie es gleich noch einmal.",
        "not_found": "Nicht gefunden.", "welcome": "Willkommen", "public_intro":
        "Neuzugezogene finden hier Informationen in acht Sprachen, das Kursangebot und die Beratungsstellen. "
        "Mitarbeitende der Stadt und der Partner melden sich an.",
        "sent_at": "Gesendet", "answer_due": "Antwort fällig", "person_data": "Personendaten",
        "needs": "Bedarfe", "event": "Ereignis", "at": "Zeitpunkt", "actions": "Aktionen",
        "lang_switch": "English", "dimension": "Dimension", "yes": "ja", "no": "nein",
        "escalated": "eskaliert", "more": "Details",
    },
    "en": {
        "app": "Integration platform Landsberg am Lech", "skip": "Skip to content",
        "nav": "Main navigation", "home": "Home", "courses": "Courses", "partners": "Partner directory",
        "info": "Information for newcomers", "sign_in": "Sign in", "sign_out": "Sign out",
        "username": "User name", "password": "Password", "signed_in_as": "Signed in as",
        "bad_sign_in": "Wrong user name or password.", "too_many": "Too many attempts; try again later.",
        "dashboard": "Dashboard", "my_cases": "My team's cases", "no_cases": "No open cases.",
        "waiting": "Referrals waiting for a partner's answer", "escalations": "Escalations",
        "proposed": "Proposed referrals (not sent yet)", "none": "None.",
        "register": "Register a newcomer", "register_intro": "Required fields are marked with *.",
        "given_names": "Given names", "family_name": "Family name", "birth_date": "Date of birth",
        "gender": "Gender", "nationality": "Nationality (ISO code, e.g. SY)",
        "languages": "Languages (codes, comma separated, e.g. ar, en)",
        "preferred_language": "Preferred language (code)", "residence_status_group": "Residence status",
        "arrival_date": "Arrival date", "street": "Street", "house_number": "House number",
        "postal_code": "Postal code", "district": "District", "phone": "Phone", "email": "Email",
        "address": "Address", "contact": "Contact", "person": "Person", "save": "Register",
        "errors_title": "Please check the marked fields.",
        "duplicate_title": "Possibly registered already",
        "duplicate_text": "A person with the same name and date of birth is registered already.",
        "different_person": "This is a different person: register anyway",
        "registered": "The person is registered.", "case": "Case", "cases": "Cases", "status": "Status",
        "opened": "Opened", "caseworker": "Caseworker", "team": "Team", "open_case": "Open case",
        "referrals": "Referrals", "service": "Service", "partner": "Partner", "reason": "Reason",
        "send": "Send", "revoke": "Revoke", "timeline": "Timeline", "goals": "Integration plan",
        "no_goals": "No goals yet.", "due": "Due", "consents": "Consents",
        "no_consents": "No consents.", "give_consent": "Record a consent",
        "partner_id": "Partner (id, e.g. jobcenter-landsberg)", "purpose": "Purpose",
        "record": "Record", "in_force": "in force", "withdrawn": "withdrawn", "done": "Done.",
        "statistics": "Statistics", "statistics_intro": "Anonymised indicators by the four dimensions of "
        "integration; cells under five people are suppressed.", "period": "Period",
        "period_hint": "Month (2026-11), quarter (2026-Q4) or year (2026)", "show": "Show",
        "report_html": "Report to the city council (HTML, printable as PDF)", "report_csv": "Indicators as CSV",
        "bad_period": "Please give a period such as 2026-11, 2026-Q4 or 2026.",
        "failed": "That did not work", "portal": "Partner portal", "your_referrals": "Referrals to your organisation",
        "accept": "Accept", "decline": "Decline", "complete": "Complete", "start": "Start",
        "outcome": "Outcome", "free_seats": "Free seats", "waiting_list": "Waiting list", "title": "Title",
        "level": "Target level", "location": "Location", "category": "Category", "services": "Services",
        "free_places": "free places", "website": "Website", "language": "Language",
        "choose_language": "Choose a language", "forbidden": "Your role does not allow this.",
        "csrf": "The form has expired. Please reload the page and try again.",
        "unavailable": "A service is not reachable right now. Please try again shortly.",
        "not_found": "Not found.", "welcome": "Welcome", "public_intro":
        "Newcomers find information in eight languages, the course catalogue and the advice centres here. "
        "Staff of the city and its partners sign in.",
        "sent_at": "Sent", "answer_due": "Answer due", "person_data": "Personal data",
        "needs": "Needs", "event": "Event", "at": "At", "actions": "Actions",
        "lang_switch": "Deutsch", "dimension": "Dimension", "yes": "yes", "no": "no",
        "escalated": "escalated", "more": "Details",
    },
}  # fmt: skip

#: Labels for the API's codes; a code without a label is shown as it is.
CODES: dict[str, dict[str, str]] = {
    "de": {
        "proposed": "vorgeschlagen", "sent": "gesendet", "accepted": "angenommen", "declined": "abgelehnt",
        "in_progress": "in Arbeit", "completed": "abgeschlossen", "revoked": "zurückgezogen",
        "expired": "abgelaufen", "referred_elsewhere": "weitervermittelt", "open": "offen", "closed": "geschlossen",
        "asylum_social_counselling": "Asylsozialberatung", "migration_counselling": "Migrationsberatung (MBE)",
        "youth_migration_service": "Jugendmigrationsdienst", "integration_course": "Integrationskurs",
        "course_with_childcare": "Kurs mit Kinderbetreuung", "job_placement": "Arbeitsvermittlung",
        "qualification_recognition": "Anerkennung ausländischer Abschlüsse", "housing_advice": "Wohnberatung",
        "health_advice": "Gesundheitsberatung", "female": "weiblich", "male": "männlich", "diverse": "divers",
        "unspecified": "ohne Angabe", "eu_citizen": "EU-Bürger/in", "recognised_refugee": "anerkannter Flüchtling",
        "asylum_seeker": "Asylbewerber/in", "tolerated": "Duldung",
        "skilled_worker_or_study_visa": "Fachkräfte- oder Studienvisum",
        "family_reunification": "Familiennachzug", "other": "sonstiges", "referral": "Vermittlung",
        "counselling": "Beratung", "course_enrolment": "Kursanmeldung",
        "no_capacity": "keine Kapazität", "not_eligible": "nicht anspruchsberechtigt",
        "not_our_service": "nicht unser Angebot", "already_supported": "wird bereits betreut",
        "successful": "erfolgreich", "unsuccessful": "nicht erfolgreich",
        "client_refused": "Person hat abgelehnt", "no_longer_needed": "nicht mehr nötig",
        "could_not_contact_client": "Person nicht erreicht", "consent missing": "Einwilligung fehlt",
        "the referral cannot be sent: consent missing":
            "Die Vermittlung kann nicht gesendet werden: Einwilligung fehlt",
        "culture_and_language": "Kultur und Sprache", "placement": "Bildung und Arbeit",
        "interaction": "Soziale Kontakte", "identification": "Zugehörigkeit", "achieved": "erreicht",
        "dropped": "verworfen", "charity": "Wohlfahrtsverband", "job_centre": "Jobcenter", "chamber": "Kammer",
        "adult_education": "Erwachsenenbildung", "city_department": "Stadtverwaltung",
        "youth_service": "Jugendhilfe", "district_office": "Landratsamt", "volunteer_group": "Ehrenamt",
        "german_second_language": "Deutsch als Zweitsprache", "job_german": "Berufssprachkurs",
        "literacy": "Alphabetisierung", "english": "Englisch", "health": "Gesundheit",
        "cultural_education": "Kulturelle Bildung", "civic_education": "Politische Bildung",
        "parents_and_women": "Eltern und Frauen", "orientation": "Orientierungskurs",
        "person_registered": "Person angemeldet", "person_updated": "Personendaten geändert",
        "person_moved_away": "Weggezogen", "consent_given": "Einwilligung erteilt",
        "consent_withdrawn": "Einwilligung widerrufen", "needs_assessed": "Bedarf erhoben",
        "case_opened": "Fall eröffnet", "case_assigned": "Fall zugewiesen", "case_closed": "Fall geschlossen",
        "referral_proposed": "Vermittlung vorgeschlagen",
        "referral_sent": "Vermittlung gesendet", "referral_accepted": "Vermittlung angenommen",
        "referral_declined": "Vermittlung abgelehnt", "referral_started": "Vermittlung begonnen",
        "referral_completed": "Vermittlung abgeschlossen", "referral_revoked": "Vermittlung zurückgezogen",
        "referral_escalated": "Vermittlung eskaliert", "referral_expired": "Vermittlung abgelaufen",
        "goal_set": "Ziel gesetzt", "goal_updated": "Ziel geändert", "enrolled": "Kursanmeldung",
        "waitlisted": "Auf der Warteliste", "course_completed": "Kurs abgeschlossen",
    },
    "en": {
        "in_progress": "in progress", "referred_elsewhere": "referred elsewhere",
        "asylum_social_counselling": "Asylum social counselling", "migration_counselling": "Migration counselling",
        "youth_migration_service": "Youth migration service", "integration_course": "Integration course",
        "course_with_childcare": "Course with childcare", "job_placement": "Job placement",
        "qualification_recognition": "Recognition of foreign qualifications", "housing_advice": "Housing advice",
        "health_advice": "Health advice", "eu_citizen": "EU citizen", "recognised_refugee": "recognised refugee",
        "asylum_seeker": "asylum seeker", "tolerated": "tolerated (Duldung)",
        "skilled_worker_or_study_visa": "skilled worker or study visa", "family_reunification": "family reunification",
        "course_enrolment": "course enrolment", "no_capacity": "no capacity", "not_eligible": "not eligible",
        "not_our_service": "not our service", "already_supported": "already supported",
        "client_refused": "client refused", "no_longer_needed": "no longer needed",
        "could_not_contact_client": "could not contact the client", "culture_and_language": "culture and language",
        "adult_education": "adult education", "job_centre": "job centre", "city_department": "city department",
        "youth_service": "youth service", "district_office": "district office", "volunteer_group": "volunteer group",
        "german_second_language": "German as a second language", "job_german": "German for work",
        "civic_education": "civic education", "cultural_education": "cultural education",
        "parents_and_women": "parents and women",
    },
}  # fmt: skip

#: Validation messages (Pydantic error types) in the UI's languages.
FIELD_ERRORS: dict[str, dict[str, str]] = {
    "de": {
        "missing": "Bitte ausfüllen.", "string_too_short": "Bitte ausfüllen.", "too_short": "Bitte ausfüllen.",
        "string_pattern_mismatch": "Das Format stimmt nicht.", "string_too_long": "Die Angabe ist zu lang.",
        "date_from_datetime_parsing": "Bitte ein gültiges Datum angeben.", "date_parsing": "Bitte ein gültiges "
        "Datum angeben.", "date_from_datetime_inexact": "Bitte ein gültiges Datum angeben.",
        "enum": "Bitte einen der angebotenen Werte wählen.", "district": "Diesen Ortsteil gibt es nicht.",
        "value_error": "Die Angabe ist nicht gültig.", "extra_forbidden": "Dieses Feld ist nicht vorgesehen.",
    },
    "en": {
        "missing": "Please fill this in.", "string_too_short": "Please fill this in.",
        "too_short": "Please fill this in.", "string_pattern_mismatch": "The format is not right.",
        "string_too_long": "This is too long.", "date_from_datetime_parsing": "Please give a valid date.",
        "date_parsing": "Please give a valid date.", "date_from_datetime_inexact": "Please give a valid date.",
        "enum": "Please choose one of the offered values.", "district": "There is no such district.",
        "value_error": "This is not valid.", "extra_forbidden": "This field is not expected.",
    },
}  # fmt: skip

GENDERS = ("female", "male", "diverse", "unspecified")
RESIDENCE_GROUPS = ("recognised_refugee", "asylum_seeker", "tolerated", "eu_citizen", "skilled_worker_or_study_visa",
                    "family_reunification", "other")  # fmt: skip
PURPOSES = ("referral", "counselling", "course_enrolment", "job_placement", "qualification_recognition")
DECLINE_REASONS = ("no_capacity", "not_eligible", "not_our_service", "already_supported", "other")
REGISTRATION_FIELDS = ("given_names", "family_name", "birth_date", "gender", "nationality", "languages",
                       "preferred_language", "residence_status_group", "arrival_date", "street", "house_number",
                       "postal_code", "district", "phone", "email")  # fmt: skip
ADDRESS_FIELDS = ("street", "house_number", "postal_code", "district")


# --- calling the services as the signed-in user -------------------------------------------


PERIOD = re.compile(r"^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$")


@dataclass
class Reply:
    status: int
    body: Any
    content: bytes = b""
    media_type: str = "application/json"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Upstream:
    """The gateway's forwarding for the UI: the same policy, the same signed identity, the pooled client."""

    def __init__(self, routes: dict[str, str], secret: str) -> None:
        self.routes = routes
        self.secret = secret

    async def call(self, request: Request, caller: Identity | None, method: str, path: str, *,
                   json: Any = None, params: dict[str, Any] | None = None) -> Reply:  # fmt: skip
        base = self.routes.get(path.split("/", 1)[0])
        verdict = policy.decide(method, f"/api/v1/{path}", caller.roles if caller else None)
        if base is None or not verdict:
            return Reply(403 if verdict is False else 401, {"detail": "not allowed"})
        headers = [("x-request-id", request.headers.get("x-request-id") or str(uuid.uuid4()))]
        if "traceparent" in request.headers:
            headers.append(("traceparent", request.headers["traceparent"]))
        if caller is not None:
            headers.append((internal.HEADER, internal.sign(caller, self.secret)))
            headers += [(k.decode(), v.decode()) for k, v in internal.plain_headers(caller)]
        client: httpx.AsyncClient = request.app.state.client
        try:
            reply = await client.request(method, f"{base}/api/v1/{path}", json=json, params=params, headers=headers)
        except httpx.HTTPError:
            log.warning("UI: upstream %s unreachable", base)
            return Reply(503, {"detail": "unavailable"})
        try:
            body = reply.json() if reply.content else None
        except ValueError:
            body = None
        return Reply(reply.status_code, body, reply.content, reply.headers.get("content-type", "application/json"))


# --- the router ------------------------------------------------------------------------------


def make_router(*, routes: dict[str, str], secret: str, secure_cookies: bool, rate_limit_per_minute: int) -> APIRouter:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    upstream = Upstream(routes, secret)
    router = APIRouter(prefix="/ui", include_in_schema=False)

    def lang_of(request: Request) -> str:
        asked = request.query_params.get("lang")
        if asked in LANGS:
            return asked
        stored = request.cookies.get(LANG_COOKIE)
        return stored if stored in LANGS else "de"

    def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
                            secure=secure_cookies)  # fmt: skip

    async def current(request: Request) -> Identity | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            user: Identity = await request.app.state.verifier.verify(token)
        except Unauthenticated:
            return None
        return user

    def render(request: Request, template: str, status: int = 200, *, user: Identity | None = None,
               csrf: str | None = None, **context: Any) -> HTMLResponse:  # fmt: skip
        lang = lang_of(request)
        words, codes = WORDS[lang], CODES[lang]
        token = csrf or request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)

        def label(code: Any) -> str:
            text = str(code) if code is not None else ""
            return codes.get(text, text.replace("_", " "))

        html = env.get_template(template).render(
            t=words, label=label, lang=lang, user=user, csrf_token=token, path=request.url.path,
            other_lang="en" if lang == "de" else "de", **context,
        )  # fmt: skip
        response = HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})
        if request.query_params.get("lang") in LANGS:
            set_cookie(response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
        if request.cookies.get(CSRF_COOKIE) != token:
            set_cookie(response, CSRF_COOKIE, token)
        return response

    async def form_with_csrf(request: Request) -> dict[str, str] | None:
        """The posted form, or None when its CSRF token does not match the cookie's."""
        form = await request.form()
        sent = str(form.get("csrf_token", ""))
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
            return None
        return {k: str(v) for k, v in form.items() if isinstance(v, str)}

    def refused(request: Request, user: Identity | None, key: str, status: int) -> HTMLResponse:
        return render(request, "message.html", status, user=user, message=WORDS[lang_of(request)][key])

    def trouble(request: Request, user: Identity | None, reply: Reply) -> HTMLResponse:
        key = {401: "forbidden", 403: "forbidden", 404: "not_found"}.get(reply.status, "unavailable")
        return refused(request, user, key, reply.status if reply.status in (401, 403, 404) else 503)

    async def signed_in(request: Request) -> Identity | Response:
        """The signed-in user (counted against the per-user rate limit), or a redirect to sign in."""
        user = await current(request)
        if user is None:
            return RedirectResponse(f"/ui/sign-in?next={quote(request.url.path)}", status_code=303)
        retry = await request.app.state.limiter.hit(f"user:{user.subject}", rate_limit_per_minute)
        if retry is not None:
            response = refused(request, user, "too_many", 429)
            response.headers["Retry-After"] = str(int(retry))
            return response
        return user

    def back(path: str, notice: str | None = None, error: str | None = None) -> RedirectResponse:
        query = f"?notice={quote(notice)}" if notice else f"?error={quote(error)}" if error else ""
        return RedirectResponse(path + query, status_code=303)

    def problem_text(reply: Reply) -> str:
        body = reply.body if isinstance(reply.body, dict) else {}
        return str(body.get("detail") or reply.status)

    # --- public pages ------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        user = await current(request)
        if user is None:
            return render(request, "home.html")
        if "partner" in user.roles and not user.roles & policy.STAFF:
            return RedirectResponse("/ui/partner", status_code=303)
        context: dict[str, Any] = {"cases": [], "waiting": [], "escalated": [], "proposed": []}
        if user.roles & {"caseworker", "admin"}:
            params: dict[str, Any] = {"status": "open", "page_size": 50}
            params |= {"team": user.team} if user.team else {"caseworker_id": user.subject}
            cases = await upstream.call(request, user, "GET", "cases", params=params)
            if cases.status == 503:
                return trouble(request, user, cases)
            context["cases"] = cases.body["items"] if cases.ok else []
            mine = {c["case_id"] for c in context["cases"]}
            for key, query in (("waiting", {"status": "sent"}), ("escalated", {"escalated": "true"}),
                               ("proposed", {"status": "proposed"})):  # fmt: skip
                found = await upstream.call(request, user, "GET", "referrals", params=query | {"page_size": 200})
                items = found.body["items"] if found.ok else []
                context[key] = [r for r in items if r["case_id"] in mine or "admin" in user.roles]
        return render(request, "dashboard.html", user=user, **context)

    @router.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_page(request: Request) -> Response:
        return render(request, "sign_in.html", user=await current(request), next=_safe_next(request))

    @router.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        form = await form_with_csrf(request)
        if form is None:
            return refused(request, None, "csrf", 403)
        issuer = request.app.state.issuer
        if issuer is None:
            return refused(request, None, "forbidden", 404)
        username = form.get("username", "")[:100]
        retry = await request.app.state.limiter.hit(f"signin:{username}", 10)
        if retry is not None:
            return render(request, "sign_in.html", 429, error=WORDS[lang_of(request)]["too_many"], username=username)
        try:
            token = await issuer.sign_in(username, form.get("password", "")[:200])
        except Unauthenticated:
            return render(request, "sign_in.html", 401, error=WORDS[lang_of(request)]["bad_sign_in"],
                          username=username, next=_safe_next(request, form.get("next")))  # fmt: skip
        response = RedirectResponse(_safe_next(request, form.get("next")), status_code=303)
        set_cookie(response, SESSION_COOKIE, token, max_age=issuer.token_minutes * 60)
        set_cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32))  # a fresh token for the new session
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        if await form_with_csrf(request) is None:
            return refused(request, await current(request), "csrf", 403)
        response = RedirectResponse("/ui/", status_code=303)
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=secure_cookies)
        return response

    @router.get("/info", response_class=HTMLResponse)
    async def info_packs(request: Request) -> Response:
        packs = await upstream.call(request, None, "GET", "info-packs")
        if not packs.ok:
            return trouble(request, await current(request), packs)
        return render(request, "info_list.html", user=await current(request), packs=packs.body)

    @router.get("/info/{lang}", response_class=HTMLResponse)
    async def info_pack(lang: str, request: Request) -> Response:
        if lang not in INFO_LANGS:
            return refused(request, await current(request), "not_found", 404)
        pack = await upstream.call(request, None, "GET", f"info-packs/{lang}")
        if not pack.ok:
            return trouble(request, await current(request), pack)
        return render(request, "info_pack.html", user=await current(request), pack=pack.body, info_langs=INFO_LANGS)

    @router.get("/courses", response_class=HTMLResponse)
    async def courses(request: Request) -> Response:
        found = await upstream.call(request, None, "GET", "courses", params={"page_size": 100})
        if not found.ok:
            return trouble(request, await current(request), found)
        return render(request, "courses.html", user=await current(request), courses=found.body["items"])

    @router.get("/partners", response_class=HTMLResponse)
    async def partners(request: Request) -> Response:
        found = await upstream.call(request, None, "GET", "partners", params={"page_size": 100})
        if not found.ok:
            return trouble(request, await current(request), found)
        return render(request, "partners.html", user=await current(request), partners=found.body["items"])

    # --- registration ------------------------------------------------------------------------

    @router.get("/register", response_class=HTMLResponse)
    async def register_page(request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        if not policy.decide("POST", "/api/v1/registrations", user.roles):
            return refused(request, user, "forbidden", 403)
        return render(request, "register.html", user=user, values={}, errors={}, **_choices())

    @router.post("/register", response_class=HTMLResponse)
    async def register(request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        form = await form_with_csrf(request)
        if form is None:
            return refused(request, user, "csrf", 403)
        values = {name: form.get(name, "").strip() for name in REGISTRATION_FIELDS}
        body: dict[str, Any] = {k: v for k, v in values.items() if k not in ADDRESS_FIELDS and k != "languages"}
        body["languages"] = [part.strip() for part in values["languages"].split(",") if part.strip()]
        body["address"] = {k: values[k] for k in ADDRESS_FIELDS}
        for optional in ("arrival_date", "phone", "email"):
            if not body[optional]:
                del body[optional]
        if form.get("confirm_new_person") == "true":
            body["confirm_new_person"] = True
        reply = await upstream.call(request, user, "POST", "registrations", json=body)
        if reply.ok:
            return back(f"/ui/persons/{reply.body['person_id']}", notice="registered")
        if reply.status == 409 and isinstance(reply.body, dict) and reply.body.get("existing_persons") is not None:
            return render(request, "register.html", 409, user=user, values=values, errors={}, duplicate=reply.body,
                          **_choices())  # fmt: skip
        if reply.status == 422:
            errors = _field_errors(reply.body, lang_of(request))
            return render(request, "register.html", 422, user=user, values=values, errors=errors,
                          districts=(reply.body or {}).get("districts"), **_choices())  # fmt: skip
        return trouble(request, user, reply)

    # --- persons and cases ------------------------------------------------------------------

    @router.get("/persons/{person_id}", response_class=HTMLResponse)
    async def person_page(person_id: str, request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        person = await upstream.call(request, user, "GET", f"persons/{quote(person_id)}")
        if not person.ok:
            return trouble(request, user, person)
        consents = await upstream.call(request, user, "GET", f"persons/{quote(person_id)}/consents")
        cases = await upstream.call(request, user, "GET", "cases", params={"person_id": person_id})
        return render(request, "person.html", user=user, person=person.body,
                      consents=consents.body if consents.ok else [],
                      cases=cases.body["items"] if cases.ok else [], purposes=PURPOSES,
                      notice=request.query_params.get("notice"), error=request.query_params.get("error"))  # fmt: skip

    @router.post("/persons/{person_id}/consents")
    async def give_consent(person_id: str, request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        form = await form_with_csrf(request)
        if form is None:
            return refused(request, user, "csrf", 403)
        body = {"partner_id": form.get("partner_id", "").strip(), "purpose": form.get("purpose", "")}
        reply = await upstream.call(request, user, "POST", f"persons/{quote(person_id)}/consents", json=body)
        target = form.get("return_to", "")
        target = target if target.startswith("/ui/") and not target.startswith("//") else f"/ui/persons/{person_id}"
        return back(target, notice="done") if reply.ok else back(target, error=problem_text(reply))

    @router.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case_page(case_id: str, request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        case = await upstream.call(request, user, "GET", f"cases/{quote(case_id)}")
        if not case.ok:
            return trouble(request, user, case)
        timeline = await upstream.call(request, user, "GET", f"cases/{quote(case_id)}/timeline")
        person_path = f"persons/{quote(case.body['person_id'])}"
        person = await upstream.call(request, user, "GET", person_path)
        consents = await upstream.call(request, user, "GET", f"{person_path}/consents")
        return render(request, "case.html", user=user, case=case.body, person=person.body if person.ok else None,
                      timeline=timeline.body if timeline.ok else [], consents=consents.body if consents.ok else [],
                      purposes=PURPOSES, notice=request.query_params.get("notice"),
                      error=request.query_params.get("error"))  # fmt: skip

    @router.post("/referrals/{referral_id}/{action}")
    async def referral_action(referral_id: str, action: str, request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        form = await form_with_csrf(request)
        if form is None:
            return refused(request, user, "csrf", 403)
        if action not in ("send", "revoke"):
            return refused(request, user, "not_found", 404)
        reply = await upstream.call(request, user, "POST", f"referrals/{quote(referral_id)}/{action}")
        case_id = form.get("case_id", "")
        target = f"/ui/cases/{quote(case_id)}" if case_id else "/ui/"
        return back(target, notice="done") if reply.ok else back(target, error=problem_text(reply))

    # --- statistics for analysts ----------------------------------------------------------------

    @router.get("/statistics", response_class=HTMLResponse)
    async def statistics(request: Request) -> Response:
        """The analysts' page: choose a period, read the council report or take its figures as CSV."""
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        period = request.query_params.get("period") or datetime.now(UTC).strftime("%Y-%m")
        if not PERIOD.fullmatch(period):
            return render(request, "statistics.html", 422, user=user, period=period, period_error=True)
        found = await upstream.call(request, user, "GET", "monitoring/indicators", params={"period": period})
        if not found.ok:
            return trouble(request, user, found)
        return render(request, "statistics.html", user=user, period=period, period_error=False)

    @router.get("/statistics/report")
    async def statistics_report(request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        period = request.query_params.get("period", "")
        fmt = "csv" if request.query_params.get("format") == "csv" else "html"
        if not PERIOD.fullmatch(period):
            return render(request, "statistics.html", 422, user=user, period=period, period_error=True)
        found = await upstream.call(request, user, "GET", "monitoring/report", params={"period": period, "format": fmt})
        if not found.ok:
            return trouble(request, user, found)
        return Response(found.content, media_type=found.media_type)

    # --- the partner portal -------------------------------------------------------------------

    @router.get("/partner", response_class=HTMLResponse)
    async def portal(request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        found = await upstream.call(request, user, "GET", "partner/referrals", params={"page_size": 200})
        if not found.ok:
            return trouble(request, user, found)
        return render(request, "portal.html", user=user, referrals=found.body["items"], reasons=DECLINE_REASONS,
                      notice=request.query_params.get("notice"), error=request.query_params.get("error"))  # fmt: skip

    @router.post("/partner/referrals/{referral_id}/{action}")
    async def portal_action(referral_id: str, action: str, request: Request) -> Response:
        user = await signed_in(request)
        if isinstance(user, Response):
            return user
        form = await form_with_csrf(request)
        if form is None:
            return refused(request, user, "csrf", 403)
        body: dict[str, Any] | None = None
        if action == "decline":
            body = {"reason": form.get("reason", "")}
        elif action == "complete":
            body = {"outcome": form.get("outcome", "successful")}
            if form.get("reason"):
                body["reason"] = form["reason"]
        elif action not in ("accept", "start"):
            return refused(request, user, "not_found", 404)
        reply = await upstream.call(request, user, "POST", f"partner/referrals/{quote(referral_id)}/{action}",
                                    json=body)  # fmt: skip
        return back("/ui/partner", notice="done") if reply.ok else back("/ui/partner", error=problem_text(reply))

    return router


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def _safe_next(request: Request, value: str | None = None) -> str:
    target = value if value is not None else request.query_params.get("next", "")
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else "/ui/"


def _choices() -> dict[str, Any]:
    return {"genders": GENDERS, "residence_groups": RESIDENCE_GROUPS}


def _field_errors(problem: Any, lang: str) -> dict[str, str]:
    """Problem Details' ``errors`` as one message per form field, in the UI's language."""
    messages = FIELD_ERRORS[lang]
    errors: dict[str, str] = {}
    for error in (problem or {}).get("errors") or []:
        location = [part for part in error.get("location", []) if part not in ("body", "address")]
        field = next((part for part in location if part in REGISTRATION_FIELDS), None) or "form"
        kind = str(error.get("type", ""))
        errors.setdefault(field, messages.get(kind) or messages["value_error"])
    if not errors and isinstance(problem, dict):
        errors["form"] = str(problem.get("detail", ""))
    return errors
