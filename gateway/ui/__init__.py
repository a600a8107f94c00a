"""The web UI: server-rendered pages (Jinja2, autoescaped), German by default with an English switch.

One module per audience (``public``, ``staff`` with ``casework`` for the caseworker's day, ``learning``,
``portal``, ``statistics``, ``admin``, with ``admin_directory`` for the partner organisations and the caseworker
roster, ``admin_deadletters`` for the events the services could not handle, ``portal_entry`` for a partner's own
directory entry, ``course_admin`` for course admins' forms and the pass verification page), the API reference
(``apidocs``) and a person's Art. 15 export (``export``), all built on ``kit``; what the pages say lives in
``words``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from gateway.forward import IdentityHeaders
from gateway.ui import (
    admin,
    admin_deadletters,
    admin_directory,
    apidocs,
    casework,
    course_admin,
    export,
    learning,
    letter,
    portal,
    portal_entry,
    public,
    staff,
    statistics,
)
from gateway.ui.kit import HERE, Kit, Refused


class PageRoute(APIRoute):
    """A UI page: the one handler of ``Refused`` (sign in first, not allowed, a bad form token), which answers
    with the response the refusal carries."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handle(request)
            except Refused as refusal:
                return refusal.response

        return page


def make_router(
    *, routes: dict[str, str], identity_headers: IdentityHeaders, secure_cookies: bool, rate_limit_per_minute: int
) -> APIRouter:
    ui = Kit(
        routes=routes,
        identity_headers=identity_headers,
        secure_cookies=secure_cookies,
        rate_limit_per_minute=rate_limit_per_minute,
    )
    router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PageRoute)
    for pages in (
        public,
        casework,
        staff,
        portal,
        portal_entry,
        statistics,
        admin,
        admin_directory,
        admin_deadletters,
        learning,
        course_admin,
        letter,
        apidocs,
        export,
    ):
        pages.add_routes(router, ui)
    return router


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")
