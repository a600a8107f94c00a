"""The partner portal: partner staff answer the referrals addressed to their organisation."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from gateway.ui.kit import Kit

DECLINE_REASONS = ("no_capacity", "not_eligible", "not_our_service", "already_supported", "other")


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/partner", response_class=HTMLResponse)
    async def portal(request: Request) -> Response:
        user = await ui.signed_in(request)
        if isinstance(user, Response):
            return user
        found = await ui.call(request, user, "GET", "partner/referrals", params={"page_size": 200})
        if not found.ok:
            return ui.trouble(request, user, found)
        return ui.render(request, "portal.html", user=user, referrals=found.items(), reasons=DECLINE_REASONS)

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
        reply = await ui.call(request, user, "POST", f"partner/referrals/{quote(referral_id)}/{action}", json=body)
        return ui.after("/ui/partner", reply)
