"""The partner portal: partner staff answer the referrals addressed to their organisation and look after
its API keys, webhooks and the webhook delivery log.

Everything goes through the partners service's own API for ``user.partner_id``; that service makes the
object-level check (``X-Partner-Id`` must name the partner in the path), so another organisation's key or
webhook is "not found" here as it is in the API. A new API key or webhook secret is shown once, in the
answer to the POST that made it (``Cache-Control: no-store``): never in a URL, a cookie or a log line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from contracts import courses as course_events
from contracts import partners as partner_events
from contracts import referral as referral_events
from contracts.calendar import CITY_TIME
from contracts.vocabulary import DeclineReason, UnsuccessfulReason
from gateway.ui import names
from gateway.ui.kit import Kit, Reply, api_time, field_errors, problem_kind
from gateway.ui.words import FIELD_ERRORS

DECLINE_REASONS = tuple(r.value for r in DeclineReason)
#: A partner's own reasons: not having reached the partner is the caseworker's to say.
UNSUCCESSFUL_REASONS = tuple(
    r.value for r in UnsuccessfulReason if r is not UnsuccessfulReason.COULD_NOT_CONTACT_PARTNER
)

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


def event_name(event_type: str) -> str:
    """``de.landsberg.integration.referral.referral_sent.v1`` -> ``referral_sent``."""
    parts = event_type.split(".")
    return parts[-2] if len(parts) >= 2 else event_type


def outcome(reply: Reply) -> str:
    """An action's failure as one of ``PROBLEMS``."""
    if reply.status == 404:
        return "gone"
    if reply.status in (401, 403):
        return "forbidden"
    if reply.status == 409:
        return "pending" if problem_kind(reply.body) == "delivery-pending" else "webhook_gone"
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
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=CITY_TIME).isoformat(), True


def refused_expiry(reply: Reply) -> bool:
    """Whether the partners service refused the key's expiry for not lying in the future (its error located at
    ``expires_at``, with the code ``not-in-future``)."""
    body = reply.body if isinstance(reply.body, dict) else {}
    return any(
        isinstance(error, dict)
        and "expires_at" in (error.get("location") or [])
        and error.get("type") == "not-in-future"
        for error in body.get("errors") or []
    )


def form_errors(reply: Reply, lang: str, words: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    """The API's refusal as one message per form field (``fields``: API field -> form field), in the UI's
    language."""
    errors = field_errors(reply.body if isinstance(reply.body, dict) else {}, lang, fields, unmatched=None)
    # The portal's own words where the general message would not say what to do.
    specific = {
        "scopes": words["portal_pick_scope"],
        "event_types": words["portal_pick_event"],
        "expires_on": FIELD_ERRORS[lang]["date_parsing"],
    }
    errors |= {field: specific[field] for field in errors if field in specific}
    if "url" in errors and errors["url"] != FIELD_ERRORS[lang]["missing"]:
        errors["url"] = words["portal_bad_url"]
    if problem_kind(reply.body) == "unsafe-webhook-url":
        errors["url"] = words["portal_unsafe_url"]
    if refused_expiry(reply):
        errors["expires_on"] = words["portal_future_date"]
    if not errors:
        errors["form"] = words["failed"] if reply.status == 422 else words["unavailable"]
    return errors


def key_rows(keys: list[dict[str, Any]]) -> dict[str, Any]:
    """The API keys page's list, newest first, each with its state, and the scopes a new key may have."""
    now = datetime.now(UTC)
    rows = []
    for key in reversed(keys):
        expires = api_time(key.get("expires_at"))
        state = "revoked" if key.get("revoked_at") else "expired" if expires and expires <= now else "active"
        rows.append({**key, "state": state})
    return {"keys": rows, "scopes": SCOPES}


def webhook_rows(webhooks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"webhooks": webhooks, "groups": EVENT_GROUPS}


#: What a partner keeps on a page with a form for a new one, by the API's name for it: the page's template, its
#: form's blank values, and what the page lists of the service's answer.
KEPT: dict[str, tuple[str, dict[str, Any], Callable[[list[dict[str, Any]]], dict[str, Any]]]] = {
    "api-keys": ("portal_keys.html", {"scopes": []}, key_rows),
    "webhooks": ("portal_webhooks.html", {"event_types": []}, webhook_rows),
}


async def signed_in_partner(ui: Kit, request: Request) -> tuple[Identity, str]:
    """The signed-in user and their partner organisation; 403 for a user of no partner."""
    user = await ui.signed_in(request)
    if not user.partner_id:
        ui.refuse(request, user, "portal_no_partner", 403)
    return user, user.partner_id


async def posted_by_partner(ui: Kit, request: Request) -> tuple[Identity, str, dict[str, str]]:
    """A form posted by a partner organisation's user (checked as ``ui.posted`` does), with their partner id."""
    posted = await ui.posted(request)
    user, form = posted
    if not user.partner_id:
        ui.refuse(request, user, "portal_no_partner", 403)
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
            request,
            template,
            status,
            user=user,
            notice=None,
            error=None,
            when=when,
            event_name=event_name,
            portal_notice=words[f"portal_done_{notice}"] if notice in NOTICES else None,
            portal_error=words[problem]
            if problem in ("forbidden", "unavailable")
            else words[f"portal_problem_{problem}"]
            if problem in PROBLEMS
            else None,
            **context,
        )

    def once(response: HTMLResponse) -> HTMLResponse:
        # A page with a secret: kept by no cache, so "back" does not show it again from disk.
        response.headers["Cache-Control"] = "no-store"
        return response

    def secret_page(
        request: Request, user: Identity, webhook: Any, secret: str, *, created: bool, valid_until: Any = None
    ) -> HTMLResponse:
        """A webhook's secret, shown this once: a new webhook's, or a renewed one (the old valid ``valid_until``)."""
        return once(
            page(
                request,
                "portal_secret.html",
                user,
                created=created,
                webhook=webhook,
                secret=secret,
                valid_until=valid_until,
            )
        )

    async def partner_user(request: Request) -> tuple[Identity, str]:
        return await signed_in_partner(ui, request)

    async def partner_form(request: Request) -> tuple[Identity, str, dict[str, str]]:
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
        # Names where the consent allows: referral asks registration once for the page (each read logged).
        found = await ui.read(request, user, "partner/referrals", params={"page_size": 200, "names": "true"})
        return ui.render(
            request,
            "portal.html",
            user=user,
            referrals=found.items(),
            reasons=DECLINE_REASONS,
            unsuccessful_reasons=UNSUCCESSFUL_REASONS,
            organisation=await organisation(request, user),
        )

    @router.get("/partner/referrals/{referral_id}", response_class=HTMLResponse)
    async def portal_referral(referral_id: str, request: Request) -> Response:
        """One referral with the contact data the person's consent allows (the referral service asks registration,
        which checks the consent again and logs the read), or why there is none."""
        user = await ui.signed_in(request)
        found = await ui.read(request, user, f"partner/referrals/{quote(referral_id, safe='')}")
        referral, contact = found.body["referral"], found.body.get("personal_data")
        status = str(found.body.get("personal_data_status", ""))
        contact_state = (
            "withdrawn"
            if referral.get("consent_withdrawn")
            else "shared"
            if contact
            else "unavailable"
            if "unavailable" in status or status.startswith("not available")
            else "no_consent"
        )
        return ui.render(
            request,
            "portal_referral.html",
            user=user,
            r=referral,
            contact=contact,
            contact_state=contact_state,
            reasons=DECLINE_REASONS,
            unsuccessful_reasons=UNSUCCESSFUL_REASONS,
            organisation=await organisation(request, user),
        )

    @router.post("/partner/referrals/{referral_id}/{action}")
    async def portal_action(referral_id: str, action: str, request: Request) -> Response:
        posted = await ui.posted(request)
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
        reply = await ui.call(
            request, user, "POST", f"partner/referrals/{quote(referral_id, safe='')}/{action}", json=body
        )
        # Back to the page the button was on: the list, or the referral's own page.
        own_page = f"/ui/partner/referrals/{quote(referral_id, safe='')}"
        target = own_page if form.get("back") == "referral" else "/ui/partner"
        return ui.after(target, reply)

    # --- API keys and webhooks: a list with a form for a new one -----------------------------------

    async def kept_page(
        request: Request,
        user: Identity,
        partner_id: str,
        kept: str,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        detail: str | None = None,
    ) -> Response:
        """The page of the partner's API keys or webhooks (``kept``: the API's name for them, a key of ``KEPT``),
        with the form for a new one: blank, or (422) as it was sent with what the service refused."""
        template, blank, listed = KEPT[kept]
        found = await ui.read(request, user, f"partners/{quote(partner_id)}/{kept}")
        return page(
            request,
            template,
            user,
            422 if errors else 200,
            **listed(found.body or []),
            values=values or blank,
            errors=errors or {},
            detail=detail,
        )

    async def form_refused(
        request: Request,
        user: Identity,
        partner_id: str,
        kept: str,
        reply: Reply,
        values: dict[str, Any],
        fields: dict[str, str],
    ) -> Response:
        """A new key or webhook the service did not make: its form again with one message per field (``fields``:
        API field -> form field) for a validation refusal, the refusal page for any other."""
        if reply.status != 422:
            return ui.trouble(request, user, reply)
        errors = form_errors(reply, ui.lang_of(request), ui.words(request), fields)
        return await kept_page(request, user, partner_id, kept, values, errors, ui.problem(request, reply))

    def kept_list(kept: str) -> Callable[[Request], Awaitable[Response]]:
        async def shown(request: Request) -> Response:
            return await kept_page(request, *await partner_user(request), kept)

        return shown

    for kept in KEPT:  # the partner's API keys, its webhooks: each with the form for a new one
        router.add_api_route(
            f"/partner/{kept}", kept_list(kept), methods=["GET"], response_class=HTMLResponse, name=kept
        )

    async def kept_form(
        request: Request, texts: tuple[str, ...], lists: list[str]
    ) -> tuple[Identity, str, dict[str, Any]]:
        """The form for a new key or webhook, as the page shows it again (``ui.form_values``)."""
        user, partner_id, form = await partner_form(request)
        return user, partner_id, await ui.form_values(request, form, texts, lists)

    async def removed(request: Request, kept: str, item_id: str, notice: str) -> Response:
        """A key revoked or a webhook deleted (``kept``, a key of ``KEPT``): the service's DELETE, then back to
        their page with ``notice`` or what the service said."""
        user, partner_id, _ = await partner_form(request)
        reply = await ui.call(request, user, "DELETE", f"partners/{quote(partner_id)}/{kept}/{quote(item_id, safe='')}")
        return after(f"/ui/partner/{kept}", reply, notice)

    @router.post("/partner/api-keys", response_class=HTMLResponse)
    async def create_api_key(request: Request) -> Response:
        user, partner_id, values = await kept_form(request, ("name", "expires_on"), ["scopes"])
        expires_at, is_date = expiry_of(values["expires_on"])
        if not is_date:
            errors = {"expires_on": FIELD_ERRORS[ui.lang_of(request)]["date_parsing"]}
            return await kept_page(request, user, partner_id, "api-keys", values, errors)
        body: dict[str, Any] = {"name": values["name"], "scopes": values["scopes"]}
        if expires_at:
            body["expires_at"] = expires_at
        reply = await ui.call(request, user, "POST", f"partners/{quote(partner_id)}/api-keys", json=body)
        if reply.ok:
            return once(page(request, "portal_key_created.html", user, key=reply.body))
        fields = {"name": "name", "scopes": "scopes", "expires_at": "expires_on"}
        return await form_refused(request, user, partner_id, "api-keys", reply, values, fields)

    @router.post("/partner/api-keys/{key_id}/revoke")
    async def revoke_api_key(key_id: str, request: Request) -> Response:
        return await removed(request, "api-keys", key_id, "key_revoked")

    @router.post("/partner/webhooks", response_class=HTMLResponse)
    async def create_webhook(request: Request) -> Response:
        user, partner_id, values = await kept_form(request, ("url", "description"), ["event_types"])
        body = {k: v for k, v in values.items() if v or k != "description"}
        reply = await ui.call(request, user, "POST", f"partners/{quote(partner_id)}/webhooks", json=body)
        if reply.ok:
            return secret_page(request, user, reply.body, reply.body["secret"], created=True)
        fields = {"url": "url", "event_types": "event_types", "description": "description"}
        return await form_refused(request, user, partner_id, "webhooks", reply, values, fields)

    @router.post("/partner/webhooks/{webhook_id}/rotate-secret", response_class=HTMLResponse)
    async def rotate_secret(webhook_id: str, request: Request) -> Response:
        user, partner_id, _ = await partner_form(request)
        path = f"partners/{quote(partner_id)}/webhooks/{quote(webhook_id, safe='')}/rotate-secret"
        reply = await ui.call(request, user, "POST", path)
        if not reply.ok:
            return ui.back("/ui/partner/webhooks", error=outcome(reply))
        listed = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}/webhooks")
        webhook = next((w for w in (listed.body if listed.ok else None) or [] if w["webhook_id"] == webhook_id), None)
        valid_until = reply.body["previous_secret_valid_until"]
        return secret_page(request, user, webhook, reply.body["secret"], created=False, valid_until=valid_until)

    @router.post("/partner/webhooks/{webhook_id}/delete")
    async def delete_webhook(webhook_id: str, request: Request) -> Response:
        return await removed(request, "webhooks", webhook_id, "webhook_deleted")

    # --- the delivery log --------------------------------------------------------------------

    @router.get("/partner/webhooks/deliveries", response_class=HTMLResponse)
    async def deliveries(request: Request) -> Response:
        user, partner_id = await partner_user(request)
        status = request.query_params.get("status", "")
        status = status if status in DELIVERY_STATUSES else ""
        number = request.query_params.get("page", "1")
        current = int(number) if number.isdigit() and 0 < int(number) <= 100_000 else 1
        params: dict[str, Any] = {"page": current, "page_size": DELIVERIES_PER_PAGE}
        if status:
            params["status"] = status
        log = await ui.read(request, user, f"partners/{quote(partner_id)}/webhooks/deliveries", params=params)
        hooks = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}/webhooks")
        urls = {w["webhook_id"]: w["url"] for w in (hooks.body if hooks.ok else None) or []}
        total = int(log.body.get("total", 0))
        pages = max(1, -(-total // DELIVERIES_PER_PAGE))
        return page(
            request,
            "portal_deliveries.html",
            user,
            deliveries=log.items(),
            urls=urls,
            chosen=status,
            statuses=DELIVERY_STATUSES,
            current=current,
            pages=pages,
            total=total,
        )

    @router.post("/partner/webhooks/deliveries/{delivery_id}/replay")
    async def replay_delivery(delivery_id: str, request: Request) -> Response:
        user, partner_id, form = await partner_form(request)
        path = f"partners/{quote(partner_id)}/webhooks/deliveries/{quote(delivery_id, safe='')}/replay"
        reply = await ui.call(request, user, "POST", path)
        # Back to the page and filter the button was on.
        status = form.get("status", "")
        number = form.get("page", "")
        query = "&".join(
            part
            for part in (
                f"status={status}" if status in DELIVERY_STATUSES else "",
                f"page={number}" if number.isdigit() and len(number) <= 6 else "",
            )
            if part
        )
        target = "/ui/partner/webhooks/deliveries"
        redirect = after(target, reply, "replayed")
        if query:
            redirect.headers["location"] += f"&{query}"
        return redirect
