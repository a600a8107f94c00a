"""A partner's own entry in the directory, kept by its staff in the portal: free places, the services it offers
and the entry itself (name, description, languages, locations, contact points).

The same page as the admins' (``admin_partner.html``), posting to ``/ui/partner/entry``, always for the
signed-in user's ``partner_id``: the partners service checks that the caller keeps the entry (``X-Partner-Id``
names it), so no id from a URL or form can reach another organisation. The category is shown, not offered:
consents are given per category, and only an admin changes it.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from chassis.identity import Identity
from gateway.ui.admin_directory import (
    SERVICE_TYPES,
    Keeper,
    edit_entry,
    entry_page,
    save_service,
    withdraw_service,
)
from gateway.ui.kit import Kit, whole_number
from gateway.ui.portal import posted_by_partner, signed_in_partner

HOME = "/ui/partner/entry"
#: The partner's own staff: the portal's heading and navigation, the category shown, not chosen.
PARTNER = Keeper(
    who="partner user",
    edited="the entry of",
    home=HOME,
    context={"keeper": "partner", "form_base": HOME},
    notices={"capacity_saved": "portal_capacity_saved"},
)


def add_routes(router: APIRouter, ui: Kit) -> None:
    async def keeper_form(request: Request, service_type: str | None = None) -> tuple[Identity, str, dict[str, str]]:
        """The partner's form (about one of the services, when ``service_type`` is given: Refused, 404, for a type
        there is none of)."""
        user, partner_id, form = await posted_by_partner(ui, request)
        if service_type is not None and service_type not in SERVICE_TYPES:
            ui.refuse(request, user, "not_found", 404)
        return user, partner_id, form

    async def capacity_refused(request: Request, user: Identity, partner_id: str) -> Response:
        words = ui.words(request)
        return await entry_page(ui, PARTNER, request, user, partner_id, capacity_error=words["portal_capacity_invalid"])

    @router.get("/partner/entry", response_class=HTMLResponse)
    async def entry(request: Request) -> Response:
        user, partner_id = await signed_in_partner(ui, request)
        return await entry_page(ui, PARTNER, request, user, partner_id)

    @router.post("/partner/entry", response_class=HTMLResponse)
    async def edit(request: Request) -> Response:
        user, partner_id, form = await keeper_form(request)
        return await edit_entry(ui, PARTNER, request, user, partner_id, form)

    @router.post("/partner/entry/capacity/{service_type}", response_class=HTMLResponse)
    async def capacity(service_type: str, request: Request) -> Response:
        user, partner_id, form = await keeper_form(request, service_type)
        places = whole_number(form.get("free_places"))
        if isinstance(places, str) or (isinstance(places, int) and places < 0):
            return await capacity_refused(request, user, partner_id)
        path = f"partners/{quote(partner_id)}/services/{service_type}/capacity"
        reply = await ui.call(request, user, "PUT", path, json={"free_places": places})
        if reply.ok:
            return RedirectResponse(f"{HOME}?notice=capacity_saved#capacity-h", 303)
        if reply.status == 422:
            return await capacity_refused(request, user, partner_id)
        return ui.trouble(request, user, reply)

    @router.post("/partner/entry/services", response_class=HTMLResponse)
    async def offer_service(request: Request) -> Response:
        user, partner_id, form = await keeper_form(request)
        return await save_service(ui, PARTNER, request, user, partner_id, None, form)

    @router.post("/partner/entry/services/{service_type}", response_class=HTMLResponse)
    async def change_service(service_type: str, request: Request) -> Response:
        user, partner_id, form = await keeper_form(request, service_type)
        return await save_service(ui, PARTNER, request, user, partner_id, service_type, form)

    @router.post("/partner/entry/services/{service_type}/withdraw", response_class=HTMLResponse)
    async def withdraw(service_type: str, request: Request) -> Response:
        user, partner_id, _ = await keeper_form(request, service_type)
        return await withdraw_service(ui, PARTNER, request, user, partner_id, service_type)
