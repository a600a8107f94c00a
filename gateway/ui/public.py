"""Pages without sign-in (the information pack, the course and partner lists) and signing in and out."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway.auth import Unauthenticated
from gateway.ui.kit import CSRF_COOKIE, SESSION_COOKIE, Kit, safe_next

#: The information pack's languages; ar and fa are written right to left.
INFO_LANGS = ("de", "en", "ar", "fa", "ro", "ru", "tr", "uk")


def add_routes(router: APIRouter, ui: Kit) -> None:
    @router.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_page(request: Request) -> Response:
        return ui.render(request, "sign_in.html", user=await ui.current(request), next=safe_next(request))

    @router.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        form = await ui.form_with_csrf(request)
        if form is None:
            return ui.refused(request, None, "csrf", 403)
        issuer = request.app.state.issuer
        if issuer is None:
            return ui.refused(request, None, "forbidden", 404)
        username = form.get("username", "")[:100]
        retry = await request.app.state.limiter.hit(f"signin:{username}", 10)
        if retry is not None:
            return ui.render(request, "sign_in.html", 429, error=ui.words(request)["too_many"], username=username)
        try:
            token = await issuer.sign_in(username, form.get("password", "")[:200])
        except Unauthenticated:
            return ui.render(request, "sign_in.html", 401, error=ui.words(request)["bad_sign_in"],
                             username=username, next=safe_next(request, form.get("next")))  # fmt: skip
        response = RedirectResponse(safe_next(request, form.get("next")), status_code=303)
        ui.set_cookie(response, SESSION_COOKIE, token, max_age=issuer.token_minutes * 60)
        ui.set_cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32))  # a fresh token for the new session
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        if await ui.form_with_csrf(request) is None:
            return ui.refused(request, await ui.current(request), "csrf", 403)
        response = RedirectResponse("/ui/", status_code=303)
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            ui.delete_cookie(response, name)
        return response

    @router.get("/info", response_class=HTMLResponse)
    async def info_packs(request: Request) -> Response:
        packs = await ui.call(request, None, "GET", "info-packs")
        if not packs.ok:
            return ui.trouble(request, await ui.current(request), packs)
        return ui.render(request, "info_list.html", user=await ui.current(request), packs=packs.body)

    @router.get("/info/{lang}", response_class=HTMLResponse)
    async def info_pack(lang: str, request: Request) -> Response:
        if lang not in INFO_LANGS:
            return ui.refused(request, await ui.current(request), "not_found", 404)
        pack = await ui.call(request, None, "GET", f"info-packs/{lang}")
        if not pack.ok:
            return ui.trouble(request, await ui.current(request), pack)
        return ui.render(request, "info_pack.html", user=await ui.current(request), pack=pack.body,
                         info_langs=INFO_LANGS)  # fmt: skip

    @router.get("/courses", response_class=HTMLResponse)
    async def courses(request: Request) -> Response:
        found = await ui.call(request, None, "GET", "courses", params={"page_size": 100})
        if not found.ok:
            return ui.trouble(request, await ui.current(request), found)
        return ui.render(request, "courses.html", user=await ui.current(request), courses=found.items())

    @router.get("/partners", response_class=HTMLResponse)
    async def partners(request: Request) -> Response:
        found = await ui.call(request, None, "GET", "partners", params={"page_size": 100})
        if not found.ok:
            return ui.trouble(request, await ui.current(request), found)
        return ui.render(request, "partners.html", user=await ui.current(request), partners=found.items())
