"""A partner's own entry in the directory, kept by its staff in the portal: free places, the services it offers
and the entry itself (name, description, languages, locations, contact points).

The same page as the admins' (``admin_partner.html``), posting to ``/ui/partner/entry``, always for the
signed-in user's ``partner_id``: the partners service checks that the caller keeps the entry (``X-Partner-Id``
names it), so no id from a URL or form can reach another organisation. The category is shown, not offered:
consents are given per category, and only an admin changes it.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from gateway.ui.admin_directory import (
    CATEGORIES,
    NOTICES,
    SERVICE_TYPES,
    entry_as_sent,
    entry_body,
    entry_errors,
    language_choices,
    service_body,
    service_values,
    whole_number,
)
from gateway.ui.kit import Kit
from gateway.ui.portal import posted_by_partner, signed_in_partner

log = logging.getLogger(__name__)

HOME = "/ui/partner/entry"


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def keeper(request: Request) -> tuple[Identity, str]:
        return await signed_in_partner(ui, request)

    async def keeper_form(request: Request) -> tuple[Identity, str, dict[str, str]]:
        return await posted_by_partner(ui, request)

    async def entry_page(
        request: Request,
        user: Identity,
        partner_id: str,
        status: int = 200,
        *,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        service: dict[str, Any] | None = None,
        capacity_error: str | None = None,
    ) -> Response:
        found = await ui.call(request, user, "GET", f"partners/{quote(partner_id)}")
        if not found.ok:
            return ui.trouble(request, user, found)
        entry = found.body
        words = ui.words(request)
        notice = request.query_params.get("notice", "")
        offered = {s["service_type"] for s in entry["services"]}
        done = (
            words["portal_capacity_saved"]
            if notice == "capacity_saved"
            else words[f"dir_done_{notice}"]
            if notice in NOTICES
            else None
        )

        def language_names(codes: list[str]) -> str:
            return ", ".join(words.get(f"lang_{code}", code) for code in codes)

        return ui.render(
            request,
            "admin_partner.html",
            status,
            user=user,
            notice=None,
            error=None,
            keeper="partner",
            form_base=HOME,
            partner=entry,
            values=values or entry,
            errors=errors or {},
            service=service or {},
            not_offered=[s for s in SERVICE_TYPES if s not in offered],
            done=done,
            capacity_error=capacity_error,
            saved_service=request.query_params.get("saved_service"),
            categories=CATEGORIES,
            service_types=SERVICE_TYPES,
            languages=lambda chosen: language_choices(words, chosen),
            language_names=language_names,
        )

    @router.get("/partner/entry", response_class=HTMLResponse)
    async def entry(request: Request) -> Response:
        found = await keeper(request)
        return await entry_page(request, *found)

    @router.post("/partner/entry", response_class=HTMLResponse)
    async def edit_entry(request: Request) -> Response:
        posted = await keeper_form(request)
        user, partner_id, form = posted
        body = await entry_body(ui, request, form)
        reply = await ui.call(request, user, "PATCH", f"partners/{quote(partner_id)}", json=body)
        if reply.ok:
            log.info("partner user %s edited the entry of %s", user.subject, partner_id)
            return RedirectResponse(f"{HOME}?notice=saved#main", 303)
        if reply.status == 422:
            errors = entry_errors(reply, ui.lang_of(request), ui.words(request))
            return await entry_page(request, user, partner_id, 422, values=entry_as_sent(body, form), errors=errors)
        return ui.trouble(request, user, reply)

    @router.post("/partner/entry/capacity/{service_type}", response_class=HTMLResponse)
    async def capacity(service_type: str, request: Request) -> Response:
        posted = await keeper_form(request)
        user, partner_id, form = posted
        if service_type not in SERVICE_TYPES:
            return ui.refused(request, user, "not_found", 404)
        places = whole_number(form.get("free_places"))
        if isinstance(places, str) or (isinstance(places, int) and places < 0):
            return await entry_page(
                request, user, partner_id, 422, capacity_error=ui.words(request)["portal_capacity_invalid"]
            )
        path = f"partners/{quote(partner_id)}/services/{service_type}/capacity"
        reply = await ui.call(request, user, "PUT", path, json={"free_places": places})
        if reply.ok:
            return RedirectResponse(f"{HOME}?notice=capacity_saved#capacity-h", 303)
        if reply.status == 422:
            return await entry_page(
                request, user, partner_id, 422, capacity_error=ui.words(request)["portal_capacity_invalid"]
            )
        return ui.trouble(request, user, reply)

    @router.post("/partner/entry/services", response_class=HTMLResponse)
    async def offer_service(request: Request) -> Response:
        return await save_service(None, request)

    @router.post("/partner/entry/services/{service_type}", response_class=HTMLResponse)
    async def change_service(service_type: str, request: Request) -> Response:
        return await save_service(service_type, request)

    async def save_service(service_type: str | None, request: Request) -> Response:
        posted = await keeper_form(request)
        user, partner_id, form = posted
        kind = service_type or form.get("service_type", "")
        if service_type is not None and service_type not in SERVICE_TYPES:
            return ui.refused(request, user, "not_found", 404)
        words = ui.words(request)
        form_id = "new" if service_type is None else kind
        values = await service_values(ui, request, form, kind)
        if kind not in SERVICE_TYPES:
            service = {"form": form_id, "values": values, "errors": {"service_type": words["dir_err_category"]}}
            return await entry_page(request, user, partner_id, 422, service=service)
        body = service_body(values)
        reply = await ui.call(request, user, "PUT", f"partners/{quote(partner_id)}/services/{kind}", json=body)
        if reply.ok:
            log.info("partner user %s saved the service %s of %s", user.subject, kind, partner_id)
            return RedirectResponse(f"{HOME}?saved_service={kind}#service-{kind}", 303)
        if reply.status == 422:
            errors = entry_errors(reply, ui.lang_of(request), words)
            return await entry_page(
                request, user, partner_id, 422, service={"form": form_id, "values": values, "errors": errors}
            )
        return ui.trouble(request, user, reply)

    @router.post("/partner/entry/services/{service_type}/withdraw", response_class=HTMLResponse)
    async def withdraw_service(service_type: str, request: Request) -> Response:
        posted = await keeper_form(request)
        user, partner_id, _ = posted
        if service_type not in SERVICE_TYPES:
            return ui.refused(request, user, "not_found", 404)
        reply = await ui.call(request, user, "DELETE", f"partners/{quote(partner_id)}/services/{service_type}")
        if reply.ok or reply.status == 404:  # withdrawn already (a second click) is what was asked
            log.info("partner user %s withdrew the service %s of %s", user.subject, service_type, partner_id)
            return RedirectResponse(f"{HOME}?notice=service_withdrawn#main", 303)
        return ui.trouble(request, user, reply)
