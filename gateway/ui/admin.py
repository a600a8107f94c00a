"""The admins' pages: the routing rules (read, edit as JSON, version history) and the user accounts.

The routing rules live in the referral service and are changed only through its API (``PUT
/routing-rules`` validates the whole set and saves it as a new version). The user accounts are the
embedded sign-in's (``gateway.auth.LocalIssuer``); with the city's Keycloak they are managed there,
and the page says so. A generated password is shown once, in the answer to the form that made it,
and never logged, put in a URL or kept in plain text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from gateway.auth import ROLES, SLUG, USERNAME, AccountRefused, LocalIssuer
from gateway.ui.casework import condition_words, rule_words
from gateway.ui.kit import Kit, Reply, problem_sentence
from gateway.ui.words import FIELD_ERRORS, WORDS

log = logging.getLogger(__name__)

#: The row actions on an account, as they appear in the form's address.
ACCOUNT_ACTIONS = ("disable", "enable", "reset-password")
ACCOUNT_FIELDS = ("username", "roles", "team", "partner_id")


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def admin(request: Request) -> Identity:
        return await ui.signed_in_as(request, "admin")

    @router.get("/admin", response_class=HTMLResponse)
    async def admin_home(request: Request) -> Response:
        return ui.render(request, "admin.html", user=await admin(request))

    # --- routing rules -------------------------------------------------------------------------

    async def rules_page(
        request: Request,
        user: Identity,
        status: int = 200,
        *,
        text: str | None = None,
        problems: list[str] | None = None,
    ) -> Response:
        current = await ui.read(request, user, "routing-rules")
        versions = await ui.call(request, user, "GET", "routing-rules/versions")
        saved = request.query_params.get("saved", "")
        return ui.render(
            request,
            "admin_rules.html",
            status,
            user=user,
            current=current.body,
            # The explanations and conditions in the page's language (a saved version's parts from the catalogue,
            # the admin's description as its note); never the service's codes or English.
            explain=lambda rule: rule_words(int(current.body.get("version", 0)), rule, ui.lang_of(request)),
            conditions=lambda rule: condition_words(rule.get("when") or {}, ui.lang_of(request)),
            text=text if text is not None else rules_text(current.body["rules"]),
            problems=problems or [],
            history=history(versions.body if versions.ok else []),
            history_unavailable=not versions.ok,
            saved=saved if saved.isdigit() else None,
        )

    ui.form_page(router, "/admin/routing-rules", admin, rules_page)

    @router.post("/admin/routing-rules", response_class=HTMLResponse)
    async def save_rules(request: Request) -> Response:
        user, form = await ui.posted(request, "admin")
        text = form.get("rules", "")
        words = ui.words(request)
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            # Where, not the parser's English of what: the place is what an admin needs to find the slip.
            where = f"{words['admin_line']} {exc.lineno}, {words['admin_column']} {exc.colno}"
            return await rules_page(request, user, 422, text=text, problems=[f"{words['admin_not_json']} ({where})"])
        reply = await ui.call(request, user, "PUT", "routing-rules", json=parsed)
        if reply.ok:
            log.info("admin %s saved routing rules version %s", user.subject, reply.body["version"])
            return RedirectResponse(f"/ui/admin/routing-rules?saved={int(reply.body['version'])}", status_code=303)
        if reply.status == 422:
            return await rules_page(
                request, user, 422, text=text, problems=rule_problems(reply, parsed, ui.lang_of(request))
            )
        return ui.trouble(request, user, reply)

    # --- user accounts ------------------------------------------------------------------------

    async def users_page(
        request: Request,
        user: Identity,
        status: int = 200,
        *,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        revealed: dict[str, str] | None = None,
        done: str | None = None,
        error: str | None = None,
    ) -> Response:
        issuer = request.app.state.issuer
        local = issuer if isinstance(issuer, LocalIssuer) else None
        roster, directory = await asyncio.gather(
            ui.call(request, user, "GET", "caseworkers"),
            ui.call(request, None, "GET", "partners", params={"page_size": 200}),
        )
        caseworkers = roster.body if roster.ok and isinstance(roster.body, list) else None
        return ui.render(
            request,
            "admin_users.html",
            status,
            user=user,
            local=local is not None,
            accounts=local.accounts() if local else [],
            roles=ROLES,
            values=values or {"roles": []},
            errors=errors or {},
            revealed=revealed,
            done=done,
            error=error,
            roster=caseworkers,
            # Names, not ids: the accounts' partners, and the form's choice of organisation and known teams.
            partner_names={p["partner_id"]: p["name"] for p in directory.items()},
            teams=sorted({c["team"] for c in caseworkers or [] if c.get("team")}),
        )

    ui.form_page(router, "/admin/users", admin, users_page)

    @router.post("/admin/users", response_class=HTMLResponse)
    async def create_user(request: Request) -> Response:
        user, form = await ui.posted(request, "admin")
        issuer = request.app.state.issuer
        if not isinstance(issuer, LocalIssuer):
            return await users_page(request, user, 409)
        values = await ui.form_values(request, form, ("username", "team", "partner_id"), ["roles"])
        words = ui.words(request)
        try:
            problem = await unknown_partner(request, ui, user, values["partner_id"])
            if problem:
                raise AccountRefused("partner_id", problem)
            password = await issuer.create_account(
                values["username"], values["roles"], values["team"] or None, values["partner_id"] or None
            )
        except AccountRefused as refused:
            errors = {refused.field: words.get(f"admin_err_{refused.field}_{refused.code}", words["failed"])}
            return await users_page(request, user, 422, values=values, errors=errors)
        log.info("admin %s created the local account %s (roles %s)", user.subject, values["username"], values["roles"])
        revealed = {"username": values["username"], "password": password, "kind": "created"}
        if "caseworker" in values["roles"]:  # the next step: a caseworker takes cases once on the roster
            revealed["roster"] = "/ui/admin/roster?" + urlencode(
                {"username": values["username"], "team": values["team"]}
            )
        return await users_page(request, user, 201, revealed=revealed)

    @router.post("/admin/users/{username}/{action}", response_class=HTMLResponse)
    async def account_action(username: str, action: str, request: Request) -> Response:
        user, _ = await ui.posted(request, "admin")
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
            return await users_page(
                request, user, revealed={"username": username, "password": password, "kind": "reset"}
            )
        return await users_page(
            request, user, done=words["admin_enabled_done" if action == "enable" else "admin_disabled_done"]
        )


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


def rule_problems(reply: Reply, sent: Any, lang: str) -> list[str]:
    """A validation Problem's errors as lines a person can act on, in the page's language: which rule (by number and
    id), where in it (the field as the JSON spells it), and what is wrong (by the error's code)."""
    words, messages = WORDS[lang], FIELD_ERRORS[lang]
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
        # What is wrong in the catalogue's words for the error's code, never the service's English message.
        message = messages.get(str(error.get("type", ""))) or messages["value_error"]
        lines.append(f"{', '.join(where)}: {message}" if where else message)
    return lines or [problem_sentence(body, lang)]
