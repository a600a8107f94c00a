"""The admins' page of dead letters: events a service could not handle, from all services at once.

Each service keeps its dead letters in its own database (``chassis.deadletters``); the page shows them merged
(``gateway.deadletters``), with how many are open, why each failed, and two actions: replay (the service runs
its handler again, through its inbox: an event already handled is not handled twice) and discard with a
reason. Events carry no personal data, so neither does this page.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from chassis.identity import Identity
from gateway import deadletters, policy
from gateway.ui import names
from gateway.ui.kit import Kit, api_time

log = logging.getLogger(__name__)

FILTERS = ("open", "replayed", "discarded", "all")


def event_name(event_type: Any) -> str:
    """``de.landsberg.integration.partners.service_offered.v1`` -> ``service_offered`` (the label's code)."""
    parts = str(event_type or "").split(".")
    return parts[-2] if len(parts) >= 2 else str(event_type or "")


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def letters_page(
        request: Request,
        user: Identity,
        status: int = 200,
        *,
        done: str | None = None,
        failed: str | None = None,
        shown: str | None = None,
    ) -> Response:
        shown = shown or request.query_params.get("status", "open")
        if shown not in FILTERS:
            shown = "open"
        if not policy.decide("GET", "/api/v1/admin/dead-letters", user.roles):
            return ui.refused(request, user, "forbidden", 403)
        found = await deadletters.merged(
            request.app.state.client,
            ui.upstream.routes,
            ui.upstream.identity_headers,
            user,
            status=None if shown == "all" else shown,
            request_id=request.headers.get("x-request-id") or str(uuid.uuid4()),
        )
        for item in found["items"]:
            item["event_name"] = event_name(item.get("event_type"))
            for moment in ("first_failed_at", "last_failed_at", "resolved_at"):  # Landsberg's time, the page's language
                at = api_time(item.get(moment))
                item[moment] = names.moment(at, ui.lang_of(request)) if at else None
        return ui.render(
            request,
            "admin_dead_letters.html",
            status,
            user=user,
            found=found,
            shown=shown,
            filters=FILTERS,
            done=done,
            failed=failed,
        )

    async def admin(request: Request) -> Identity:
        return await ui.signed_in_as(request, "admin")

    ui.form_page(router, "/admin/dead-letters", admin, letters_page)

    @router.post("/admin/dead-letters/{service}/{letter_id}/{action}", response_class=HTMLResponse)
    async def dead_letter_action(service: str, letter_id: str, action: str, request: Request) -> Response:
        user, form = await ui.posted(request, "admin")
        if (
            service not in deadletters.SEGMENT_OF_SERVICE
            or action not in deadletters.ACTIONS
            or policy.bent(letter_id)
            or deadletters.SEGMENT_OF_SERVICE[service] not in ui.upstream.routes
        ):
            return ui.refused(request, user, "not_found", 404)
        path = f"/api/v1/admin/dead-letters/{service}/{letter_id}/{action}"
        if not policy.decide("POST", path, user.roles):
            return ui.refused(request, user, "forbidden", 403)
        words = ui.words(request)
        shown = form.get("shown", "open")
        reason = form.get("reason", "").strip()
        if action == "discard" and not reason:
            return await letters_page(request, user, 422, failed=words["dl_reason_missing"], shown=shown)
        reply = await deadletters.act(
            request.app.state.client,
            ui.upstream.routes,
            ui.upstream.identity_headers,
            user,
            service,
            letter_id,
            action,
            json={"reason": reason[:500]} if action == "discard" else None,
            request_id=request.headers.get("x-request-id") or str(uuid.uuid4()),
        )
        if reply is None:
            return ui.refused(request, user, "unavailable", 503)
        if reply.status_code == 404:
            return ui.refused(request, user, "not_found", 404)
        if reply.status_code == 409:
            return await letters_page(request, user, 409, failed=words["dl_closed"], shown=shown)
        if reply.status_code != 200:
            return ui.refused(request, user, "unavailable", 503)
        letter = reply.json()
        log.info("admin %s: %s on dead letter %s of %s", user.subject, action, letter_id, service)
        if action == "replay" and letter.get("status") != "replayed":
            reason_text = f"{letter.get('error_class', '')}: {letter.get('error_message', '')}"
            return await letters_page(request, user, failed=f"{words['dl_replay_failed']} {reason_text}", shown=shown)
        done = words["dl_replayed_done" if action == "replay" else "dl_discarded_done"]
        return await letters_page(request, user, done=done, shown=shown)
