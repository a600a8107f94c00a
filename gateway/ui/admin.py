"""The admins' pages: the routing rules (read, edit as JSON, version history) and the user accounts.

The routing rules live in the referral service and are changed only through its API (``PUT
/routing-rules`` validates the whole set and saves it as a new version). The user accounts are the
embedded sign-in's (``gateway.auth.LocalIssuer``); with the city's Keycloak they are managed there,
and the page says so. A generated password is shown once, in the answer to the form that made it,
and never logged, put in a URL or kept in plain text.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from gateway.auth import ROLES, SLUG, USERNAME, AccountRefused, LocalIssuer
from gateway.ui.kit import Kit, Reply
from gateway.ui.words import more_words

log = logging.getLogger(__name__)

#: The row actions on an account, as they appear in the form's address.
ACCOUNT_ACTIONS = ("disable", "enable", "reset-password")
ACCOUNT_FIELDS = ("username", "roles", "team", "partner_id")

more_words({
    "de": {
        "admin_intro": "Partnerorganisationen, Integrationslotsen, Vermittlungsregeln und Benutzerkonten der "
        "Plattform.",
        "admin_sections": "Bereiche der Verwaltung",
        "admin_rules": "Vermittlungsregeln", "admin_users": "Benutzerkonten",
        "admin_rules_intro": "Die Regeln schlagen aus der Bedarfserhebung Vermittlungen an Partner vor. "
        "Jede Speicherung ist eine neue Version; die neueste gilt.",
        "admin_version": "Version", "admin_in_force": "Gültige Version",
        "admin_builtin": "Voreinstellung (noch keine gespeicherte Version)", "admin_saved_by": "Gespeichert von",
        "admin_saved_at": "Gespeichert am", "admin_rule": "Regel", "admin_conditions": "Bedingungen",
        "admin_target": "Zielleistung", "admin_explanation": "Erläuterung",
        "admin_shares_data": "gibt Personendaten weiter", "admin_no_data": "ohne Personendaten",
        "admin_edit": "Regeln bearbeiten", "admin_rules_json": "Regeln als JSON (eine Liste)",
        "admin_edit_hint": "Die ganze Regelliste. Beim Speichern prüft der Vermittlungsdienst sie vollständig: "
        "eine gültige Liste wird die nächste Version, eine ungültige wird nicht gespeichert.",
        "admin_save_rules": "Als neue Version speichern", "admin_saved_version": "Gespeichert als Version",
        "admin_rules_invalid": "Die Regeln sind nicht gültig; es wurde nichts gespeichert.",
        "admin_not_json": "Das ist kein gültiges JSON", "admin_line": "Zeile", "admin_column": "Spalte",
        "admin_history": "Versionen", "admin_rule_count": "Regeln",
        "admin_changes": "Änderungen zur Vorversion", "admin_first_version": "erste gespeicherte Version",
        "admin_added": "neu", "admin_removed": "entfernt", "admin_changed": "geändert",
        "admin_unchanged": "keine", "admin_no_versions": "Noch keine gespeicherte Version; es gelten die "
        "voreingestellten Regeln.",
        "admin_cond_need_any": "Bedarf (einer von)", "admin_cond_german_below": "Deutsch unter Niveau",
        "admin_cond_residence_status_in": "Aufenthaltsstatus (einer von)",
        "admin_cond_age_band_in": "Altersgruppe (eine von)", "admin_cond_gender_in": "Geschlecht (eines von)",
        "admin_cond_childcare_needed": "Kinderbetreuung nötig", "admin_cond_has_children": "Hat Kinder",
        "admin_cond_language_any": "Spricht (eine von)",
        "admin_accounts": "Konten der eingebauten Anmeldung", "admin_roles": "Rollen", "admin_active": "Aktiv",
        "admin_disabled": "gesperrt", "admin_disable": "Sperren", "admin_enable": "Entsperren",
        "admin_reset": "Neues Passwort", "admin_you": "(Sie)", "admin_create": "Konto anlegen",
        "admin_create_button": "Anlegen", "admin_username_hint": "2 bis 64 Zeichen: Kleinbuchstaben, Ziffern, "
        "Punkt, Bindestrich oder Unterstrich",
        "admin_team": "Team (optional)", "admin_team_hint": "z. B. integration-nord",
        "admin_partner_id": "Partner-Kennung", "admin_partner_hint": "Nur mit der Rolle Partnerorganisation "
        "oder Kursverwaltung (der Kursanbieter), dort Pflicht; z. B. caritas-landsberg, vhs-landsberg",
        "admin_created": "Das Konto ist angelegt:", "admin_new_password": "Neues Passwort für",
        "admin_password": "Passwort (nur jetzt sichtbar)",
        "admin_password_once": "Das Passwort wird nur jetzt angezeigt und nirgends im Klartext gespeichert. "
        "Bitte sicher weitergeben, nicht per unverschlüsselter E-Mail.",
        "admin_disabled_done": "Das Konto ist gesperrt; seine Sitzungen enden.",
        "admin_enabled_done": "Das Konto ist wieder aktiv.",
        "admin_keycloak": "Die Benutzerkonten verwaltet der Keycloak der Stadt: Rollen sind dort Realm-Rollen "
        "(registrar, caseworker, course_admin, partner, analyst, privacy_officer, admin), "
        "Team und Partner-Kennung Attribute. "
        "Hier gibt es nichts zu ändern.",
        "admin_roster": "Integrationslotsen (Einsatzliste des Vermittlungsdienstes)", "admin_name": "Name",
        "admin_roster_edit": "Einsatzliste bearbeiten",
        "admin_languages": "Sprachen", "admin_load": "Offene Fälle / Höchstzahl",
        "admin_role_registrar": "Meldebehörde", "admin_role_caseworker": "Integrationslotse",
        "admin_role_course_admin": "Kursverwaltung (VHS)", "admin_role_partner": "Partnerorganisation",
        "admin_role_analyst": "Statistik", "admin_role_privacy_officer": "Datenschutz",
        "admin_role_admin": "Verwaltung",
        "admin_err_username_format": "Bitte 2 bis 64 Zeichen: Kleinbuchstaben, Ziffern, Punkt, Bindestrich.",
        "admin_err_username_taken": "Diesen Benutzernamen gibt es schon.",
        "admin_err_username_unknown": "Dieses Konto gibt es nicht.",
        "admin_err_username_own_account": "Das eigene Konto kann man nicht sperren.",
        "admin_err_roles_missing": "Bitte mindestens eine Rolle wählen.",
        "admin_err_roles_unknown": "Bitte nur die angebotenen Rollen wählen.",
        "admin_err_team_format": "Bitte Kleinbuchstaben, Ziffern und Bindestriche (z. B. integration-nord).",
        "admin_err_partner_id_missing": "Mit der Rolle Partnerorganisation oder Kursverwaltung ist die "
        "Partner-Kennung Pflicht.",
        "admin_err_partner_id_without_partner_role": "Eine Partner-Kennung nur mit der Rolle Partnerorganisation "
        "oder Kursverwaltung.",
        "admin_err_partner_id_format": "Bitte Kleinbuchstaben, Ziffern und Bindestriche (z. B. caritas-landsberg).",
        "admin_err_partner_id_unknown": "Diesen Partner gibt es im Partnerverzeichnis nicht.",
        "admin_err_partner_id_unavailable": "Das Partnerverzeichnis ist gerade nicht erreichbar.",
    },
    "en": {
        "admin_intro": "The platform's partner organisations, caseworkers, routing rules and user accounts.",
        "admin_sections": "Administration sections",
        "admin_rules": "Routing rules", "admin_users": "User accounts",
        "admin_rules_intro": "From a needs assessment the rules propose referrals to partners. Every save "
        "is a new version; the newest is in force.",
        "admin_version": "Version", "admin_in_force": "Version in force",
        "admin_builtin": "Built-in defaults (no version saved yet)", "admin_saved_by": "Saved by",
        "admin_saved_at": "Saved at", "admin_rule": "Rule", "admin_conditions": "Conditions",
        "admin_target": "Target service", "admin_explanation": "Explanation",
        "admin_shares_data": "shares personal data", "admin_no_data": "without personal data",
        "admin_edit": "Edit the rules", "admin_rules_json": "Rules as JSON (a list)",
        "admin_edit_hint": "The whole list of rules. On saving, the referral service checks all of it: a "
        "valid list becomes the next version, an invalid one is not saved.",
        "admin_save_rules": "Save as a new version", "admin_saved_version": "Saved as version",
        "admin_rules_invalid": "The rules are not valid; nothing was saved.",
        "admin_not_json": "This is not valid JSON", "admin_line": "line", "admin_column": "column",
        "admin_history": "Versions", "admin_rule_count": "Rules",
        "admin_changes": "Changes from the version before", "admin_first_version": "first saved version",
        "admin_added": "added", "admin_removed": "removed", "admin_changed": "changed",
        "admin_unchanged": "none", "admin_no_versions": "No version saved yet; the built-in rules are in force.",
        "admin_cond_need_any": "Need (any of)", "admin_cond_german_below": "German below level",
        "admin_cond_residence_status_in": "Residence status (any of)",
        "admin_cond_age_band_in": "Age band (any of)", "admin_cond_gender_in": "Gender (any of)",
        "admin_cond_childcare_needed": "Needs childcare", "admin_cond_has_children": "Has children",
        "admin_cond_language_any": "Speaks (any of)",
        "admin_accounts": "Accounts of the built-in sign-in", "admin_roles": "Roles", "admin_active": "Active",
        "admin_disabled": "disabled", "admin_disable": "Disable", "admin_enable": "Enable",
        "admin_reset": "New password", "admin_you": "(you)", "admin_create": "Create an account",
        "admin_create_button": "Create", "admin_username_hint": "2 to 64 characters: lower-case letters, digits, "
        "dot, hyphen or underscore",
        "admin_team": "Team (optional)", "admin_team_hint": "e.g. integration-nord",
        "admin_partner_id": "Partner id", "admin_partner_hint": "Only with the role partner organisation or "
        "course administration (the course provider), and required there; e.g. caritas-landsberg, vhs-landsberg",
        "admin_created": "The account is created:", "admin_new_password": "New password for",
        "admin_password": "Password (shown only now)",
        "admin_password_once": "The password is shown only now and stored nowhere in plain text. Hand it on "
        "safely, not by unencrypted email.",
        "admin_disabled_done": "The account is disabled; its sessions end.",
        "admin_enabled_done": "The account is active again.",
        "admin_keycloak": "User accounts are managed in the city's Keycloak: roles are realm roles "
        "(registrar, caseworker, course_admin, partner, analyst, privacy_officer, admin), "
        "team and partner id are attributes. "
        "There is nothing to change here.",
        "admin_roster": "Caseworkers (the referral service's roster)", "admin_name": "Name",
        "admin_roster_edit": "Edit the roster",
        "admin_languages": "Languages", "admin_load": "Open cases / maximum",
        "admin_role_registrar": "Registration office", "admin_role_caseworker": "Caseworker",
        "admin_role_course_admin": "Course administration (VHS)", "admin_role_partner": "Partner organisation",
        "admin_role_analyst": "Statistics", "admin_role_privacy_officer": "Data protection",
        "admin_role_admin": "Administration",
        "admin_err_username_format": "Please use 2 to 64 characters: lower-case letters, digits, dot, hyphen.",
        "admin_err_username_taken": "This user name exists already.",
        "admin_err_username_unknown": "There is no such account.",
        "admin_err_username_own_account": "You cannot disable your own account.",
        "admin_err_roles_missing": "Please choose at least one role.",
        "admin_err_roles_unknown": "Please choose only the offered roles.",
        "admin_err_team_format": "Please use lower-case letters, digits and hyphens (e.g. integration-nord).",
        "admin_err_partner_id_missing": "The roles partner organisation and course administration need a "
        "partner id.",
        "admin_err_partner_id_without_partner_role": "A partner id only with the role partner organisation or "
        "course administration.",
        "admin_err_partner_id_format": "Please use lower-case letters, digits and hyphens (e.g. caritas-landsberg).",
        "admin_err_partner_id_unknown": "There is no such partner in the partner directory.",
        "admin_err_partner_id_unavailable": "The partner directory is not reachable right now.",
    },
})  # fmt: skip


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def admin_only(request: Request) -> Identity | Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        if "admin" not in user.roles:
            return ui.refused(request, user, "forbidden", 403)
        return user

    @router.get("/admin", response_class=HTMLResponse)
    async def admin_home(request: Request) -> Response:
        user = await admin_only(request)
        if isinstance(user, Response):
            return user
        return ui.render(request, "admin.html", user=user)

    # --- routing rules -------------------------------------------------------------------------

    async def rules_page(request: Request, user: Identity, status: int = 200, *, text: str | None = None,
                         problems: list[str] | None = None) -> Response:  # fmt: skip
        current = await ui.call(request, user, "GET", "routing-rules")
        if not current.ok:
            return ui.trouble(request, user, current)
        versions = await ui.call(request, user, "GET", "routing-rules/versions")
        saved = request.query_params.get("saved", "")
        return ui.render(
            request, "admin_rules.html", status, user=user, current=current.body,
            text=text if text is not None else rules_text(current.body["rules"]),
            problems=problems or [], history=history(versions.body if versions.ok else []),
            history_unavailable=not versions.ok, saved=saved if saved.isdigit() else None,
        )  # fmt: skip

    @router.get("/admin/routing-rules", response_class=HTMLResponse)
    async def rules(request: Request) -> Response:
        user = await admin_only(request)
        if isinstance(user, Response):
            return user
        return await rules_page(request, user)

    @router.post("/admin/routing-rules", response_class=HTMLResponse)
    async def save_rules(request: Request) -> Response:
        user = await admin_only(request)
        if isinstance(user, Response):
            return user
        form = await ui.form_with_csrf(request)
        if form is None:
            return ui.refused(request, user, "csrf", 403)
        text = form.get("rules", "")
        words = ui.words(request)
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{words['admin_line']} {exc.lineno}, {words['admin_column']} {exc.colno}"
            return await rules_page(request, user, 422, text=text,
                                    problems=[f"{words['admin_not_json']} ({where}): {exc.msg}"])  # fmt: skip
        reply = await ui.call(request, user, "PUT", "routing-rules", json=parsed)
        if reply.ok:
            log.info("admin %s saved routing rules version %s", user.subject, reply.body["version"])
            return RedirectResponse(f"/ui/admin/routing-rules?saved={int(reply.body['version'])}", status_code=303)
        if reply.status == 422:
            return await rules_page(request, user, 422, text=text, problems=rule_problems(reply, parsed, words))
        return ui.trouble(request, user, reply)

    # --- user accounts ------------------------------------------------------------------------

    async def users_page(request: Request, user: Identity, status: int = 200, *, values: dict[str, Any] | None = None,
                         errors: dict[str, str] | None = None, revealed: dict[str, str] | None = None,
                         done: str | None = None, error: str | None = None) -> Response:  # fmt: skip
        issuer = request.app.state.issuer
        local = issuer if isinstance(issuer, LocalIssuer) else None
        roster = await ui.call(request, user, "GET", "caseworkers")
        return ui.render(
            request, "admin_users.html", status, user=user, local=local is not None,
            accounts=local.accounts() if local else [], roles=ROLES, values=values or {"roles": []},
            errors=errors or {}, revealed=revealed, done=done, error=error,
            roster=roster.body if roster.ok and isinstance(roster.body, list) else None,
        )  # fmt: skip

    @router.get("/admin/users", response_class=HTMLResponse)
    async def users(request: Request) -> Response:
        user = await admin_only(request)
        if isinstance(user, Response):
            return user
        return await users_page(request, user)

    @router.post("/admin/users", response_class=HTMLResponse)
    async def create_user(request: Request) -> Response:
        user = await admin_only(request)
        if isinstance(user, Response):
            return user
        form = await ui.form_with_csrf(request)
        if form is None:
            return ui.refused(request, user, "csrf", 403)
        issuer = request.app.state.issuer
        if not isinstance(issuer, LocalIssuer):
            return await users_page(request, user, 409)
        values: dict[str, Any] = {name: form.get(name, "").strip() for name in ("username", "team", "partner_id")}
        values["roles"] = await ui.form_list(request, "roles")
        words = ui.words(request)
        try:
            problem = await unknown_partner(request, ui, user, values["partner_id"])
            if problem:
                raise AccountRefused("partner_id", problem)
            password = await issuer.create_account(values["username"], values["roles"], values["team"] or None,
                                                   values["partner_id"] or None)  # fmt: skip
        except AccountRefused as refused:
            errors = {refused.field: words.get(f"admin_err_{refused.field}_{refused.code}", words["failed"])}
            return await users_page(request, user, 422, values=values, errors=errors)
        log.info("admin %s created the local account %s (roles %s)", user.subject, values["username"], values["roles"])
        revealed = {"username": values["username"], "password": password, "kind": "created"}
        if "caseworker" in values["roles"]:  # the next step: a caseworker takes cases once on the roster
            revealed["roster"] = "/ui/admin/roster?" + urlencode({"username": values["username"],
                                                                  "team": values["team"]})  # fmt: skip
        return await users_page(request, user, 201, revealed=revealed)

    @router.post("/admin/users/{username}/{action}", response_class=HTMLResponse)
    async def account_action(username: str, action: str, request: Request) -> Response:
        user = await admin_only(request)
        if isinstance(user, Response):
            return user
        form = await ui.form_with_csrf(request)
        if form is None:
            return ui.refused(request, user, "csrf", 403)
        issuer = request.app.state.issuer
        if action not in ACCOUNT_ACTIONS or not USERNAME.fullmatch(username):
            return ui.refused(request, user, "not_found", 404)
        if not isinstance(issuer, LocalIssuer):
            return await users_page(request, user, 409)
        words = ui.words(request)
        try:
            if action == "reset-password":
                password = await issuer.reset_password(username)
            else:
                await issuer.set_active(username, action == "enable", by=user.subject)
        except AccountRefused as refused:
            status = 404 if refused.code == "unknown" else 409
            return await users_page(request, user, status, error=words[f"admin_err_{refused.field}_{refused.code}"])
        log.info("admin %s: %s on the local account %s", user.subject, action, username)
        if action == "reset-password":
            return await users_page(request, user, revealed={"username": username, "password": password,
                                                             "kind": "reset"})  # fmt: skip
        return await users_page(request, user, done=words["admin_enabled_done" if action == "enable" else
                                                          "admin_disabled_done"])  # fmt: skip


async def unknown_partner(request: Request, ui: Kit, user: Identity, partner_id: str) -> str | None:
    """Why ``partner_id`` cannot be given to an account ("unknown", "unavailable"), or None when it can
    (or none is given: whether one is needed is the account rules' business)."""
    if not SLUG.fullmatch(partner_id):
        return None  # the account rules refuse a missing or malformed one, with the right message
    found = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}")
    if found.ok:
        return None
    return "unknown" if found.status in (404, 422) else "unavailable"


def rules_text(rules: list[dict[str, Any]]) -> str:
    """The rules as JSON to edit: pretty-printed, without the conditions that are not set (null)."""
    shown = [{**rule, "when": {k: v for k, v in (rule.get("when") or {}).items() if v is not None}} for rule in rules]
    return json.dumps(shown, indent=2, ensure_ascii=False)


def history(versions: Any) -> list[dict[str, Any]]:
    """The saved versions, newest first, each with what changed from the one before it."""
    rows = [v for v in versions if isinstance(v, dict)] if isinstance(versions, list) else []
    rows.sort(key=lambda v: int(v.get("version", 0)), reverse=True)
    out = []
    for index, version in enumerate(rows):
        rules = {r.get("id"): r for r in version.get("rules") or []}
        entry: dict[str, Any] = {**version, "count": len(rules), "first": index == len(rows) - 1}
        if index + 1 < len(rows):
            before = {r.get("id"): r for r in rows[index + 1].get("rules") or []}
            entry["added"] = sorted(str(i) for i in rules.keys() - before.keys())
            entry["removed"] = sorted(str(i) for i in before.keys() - rules.keys())
            entry["changed"] = sorted(str(i) for i in rules.keys() & before.keys() if rules[i] != before[i])
        out.append(entry)
    return out


def rule_problems(reply: Reply, sent: Any, words: dict[str, str]) -> list[str]:
    """A validation Problem's errors as lines a person can act on: which rule (by number and id), where
    in it, and what is wrong."""
    body = reply.body if isinstance(reply.body, dict) else {}
    lines = []
    for error in body.get("errors") or []:
        location = [str(part) for part in error.get("location") or []]
        while location and location[0] in ("body", "rules"):
            location = location[1:]
        where = []
        if location and location[0].isdigit():
            index = int(location[0])
            rule = sent[index] if isinstance(sent, list) and index < len(sent) else None
            rule_id = rule.get("id") if isinstance(rule, dict) else None
            where.append(f"{words['admin_rule']} {index + 1}" + (f" ({rule_id})" if isinstance(rule_id, str) else ""))
            location = location[1:]
        if location:
            where.append(".".join(location))  # the field inside the rule, as it is spelt in the JSON
        message = str(error.get("message", ""))
        lines.append(f"{', '.join(where)}: {message}" if where else message)
    return lines or [str(body.get("detail") or reply.status)]
