"""What every page needs: calling the services as the signed-in user, rendering, cookies, CSRF.

Every page reads and writes through the public API's own road: the role x route matrix of
``policy``, the per-user rate limit, and the caller's identity signed into the internal header
exactly as the gateway's ``proxy`` does; the services make the object-level checks. The UI holds
no business rule of its own. Browser sessions: the sign-in's token in an HttpOnly, SameSite=Lax
cookie (Secure outside development); every form carries a CSRF token (double submit).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from chassis.errors import Problem
from chassis.identity import Identity
from gateway.auth import Unauthenticated
from gateway.forward import Forwarder, IdentityHeaders
from gateway.throttle import Throttled, client_key
from gateway.ui import names
from gateway.ui.words import CODES, FIELD_ERRORS, PROBLEMS, WORDS

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "lip_session"
CSRF_COOKIE = "lip_csrf"
LANG_COOKIE = "lip_lang"
LANGS = ("de", "en")
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Reply:
    status: int
    body: Any
    content: bytes = b""
    media_type: str = "application/json"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def items(self) -> list[Any]:
        """A page's items, or nothing when the call did not succeed."""
        return list(self.body["items"]) if self.ok and isinstance(self.body, dict) else []


@dataclass(frozen=True)
class Sent:
    """A form shown again after its POST was refused: what was typed (``values``), what was refused (``errors``, by
    field) and the answer's ``status``."""

    values: dict[str, Any]
    errors: dict[str, str]
    status: int = 422


class Upstream:
    """The gateway's forwarding for the UI (``gateway.forward``): the same policy, the same signed identity, the
    pooled client; a refusal is a Reply the page shows, not a Problem."""

    def __init__(self, routes: dict[str, str], identity_headers: IdentityHeaders) -> None:
        self.routes = routes
        self.identity_headers = identity_headers
        self.forwarder = Forwarder(routes, identity_headers)

    async def call(
        self,
        request: Request,
        caller: Identity | None,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        try:
            reply = await self.forwarder.call(
                request, caller, method, path, json=json, params=params, headers=(headers or {}).items()
            )
        except Problem as refusal:
            return Reply(
                refusal.status, {"type": refusal.kind or "", "detail": REFUSED.get(refusal.status, "unavailable")}
            )
        try:
            body = reply.json() if reply.content else None
        except ValueError:
            body = None
        return Reply(reply.status_code, body, reply.content, reply.headers.get("content-type", "application/json"))


class Refused(Exception):
    """A page ends early with ``response`` (the refusal page, or a redirect): raised by the helpers pages share,
    answered by the UI router's one handler (``gateway.ui.PageRoute``), so no page checks what a helper returned."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class SignInNeeded(Refused):
    """No (valid) session: to the sign-in page, and back to ``path`` afterwards."""

    def __init__(self, path: str) -> None:
        super().__init__(RedirectResponse(f"/ui/sign-in?next={quote(path)}", status_code=303))


#: What a page learns of a call the gateway refused (the detail of the Reply).
REFUSED = {404: "not found", 401: "not allowed", 403: "not allowed"}


class Kit:
    """Rendering, sessions and forms, shared by the page modules."""

    def __init__(
        self,
        *,
        routes: dict[str, str],
        identity_headers: IdentityHeaders,
        secure_cookies: bool,
        rate_limit_per_minute: int,
    ) -> None:
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
        self.upstream = Upstream(routes, identity_headers)
        self.secure_cookies = secure_cookies
        self.rate_limit_per_minute = rate_limit_per_minute

    async def call(self, request: Request, caller: Identity | None, method: str, path: str, **kwargs: Any) -> Reply:
        return await self.upstream.call(request, caller, method, path, **kwargs)

    @staticmethod
    def lang_of(request: Request) -> str:
        asked = request.query_params.get("lang")
        if asked in LANGS:
            return asked
        stored = request.cookies.get(LANG_COOKIE)
        return stored if stored in LANGS else "de"

    def words(self, request: Request) -> dict[str, str]:
        return WORDS[self.lang_of(request)]

    def set_cookie(self, response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=self.secure_cookies
        )

    def delete_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=self.secure_cookies)

    @staticmethod
    async def current(request: Request) -> Identity | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            # As a bearer token: counted against the address when refused (an expired session is not).
            user: Identity = await request.app.state.failed_auth.verified(
                request.app.state.verifier, token, client_key(request)
            )
        except (Unauthenticated, Throttled):
            return None
        return user

    def render(
        self,
        request: Request,
        template: str,
        status: int = 200,
        *,
        user: Identity | None = None,
        csrf: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        lang = self.lang_of(request)
        words, codes = WORDS[lang], CODES[lang]
        token = csrf or request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)

        def label(code: Any) -> str:
            text = str(code) if code is not None else ""
            return codes.get(text, text.replace("_", " "))

        context.setdefault("notice", request.query_params.get("notice"))
        error = request.query_params.get("error")
        context.setdefault("error", PROBLEMS[lang].get(error, error) if error else error)
        html = self.env.get_template(template).render(
            t=words,
            label=label,
            lang=lang,
            user=user,
            csrf_token=token,
            path=request.url.path,
            other_lang="en" if lang == "de" else "de",
            language_name=lambda code: names.language_name(code, lang),
            country_name=lambda code: names.country_name(code, lang),
            day=lambda value, form="medium": names.day(value, lang, form),
            moment=lambda value: names.moment(value, lang),
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})
        if request.query_params.get("lang") in LANGS:
            self.set_cookie(response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
        if request.cookies.get(CSRF_COOKIE) != token:
            self.set_cookie(response, CSRF_COOKIE, token)
        return response

    def page(
        self,
        request: Request,
        template: str,
        user: Identity | None,
        status: int = 200,
        *,
        done: Mapping[str, str],
        **context: Any,
    ) -> HTMLResponse:
        """A page that words its actions' outcomes itself: ``done`` maps the codes an action redirected with
        (``?notice=``) to the words for them, and only these are shown (as ``done``; base.html's notice is not)."""
        key = done.get(request.query_params.get("notice", ""))
        words = self.words(request)
        return self.render(
            request, template, status, user=user, notice=None, done=words[key] if key else None, **context
        )

    @staticmethod
    async def form_with_csrf(request: Request) -> dict[str, str] | None:
        """The posted form, or None when its CSRF token does not match the cookie's."""
        form = await request.form()
        sent = str(form.get("csrf_token", ""))
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
            return None
        return {k: str(v) for k, v in form.items() if isinstance(v, str)}

    async def form_list(self, request: Request, name: str) -> list[str]:
        """Every value of a repeated form field (checkboxes); call after ``form_with_csrf``."""
        form = await request.form()
        return [str(v) for v in form.getlist(name) if isinstance(v, str)]

    async def form_values(
        self, request: Request, form: Mapping[str, str], texts: Iterable[str], lists: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A form as the page shows it again: its ``texts`` as typed (trimmed, "" for none), its repeated ``lists``
        (check boxes) as lists; call after ``form_with_csrf``."""
        values: dict[str, Any] = {name: form.get(name, "").strip() for name in texts}
        return values | {name: await self.form_list(request, name) for name in lists}

    def refused(self, request: Request, user: Identity | None, key: str, status: int) -> HTMLResponse:
        return self.render(request, "message.html", status, user=user, message=self.words(request)[key])

    def trouble(self, request: Request, user: Identity | None, reply: Reply) -> HTMLResponse:
        key = {401: "forbidden", 403: "forbidden", 404: "not_found"}.get(reply.status, "unavailable")
        return self.refused(request, user, key, reply.status if reply.status in (401, 403, 404) else 503)

    def refuse(self, request: Request, user: Identity | None, key: str, status: int) -> NoReturn:
        """End the page with the refusal page saying ``words[key]``."""
        raise Refused(self.refused(request, user, key, status))

    async def signed_in(self, request: Request) -> Identity:
        """The signed-in user (counted against the per-user rate limit); raises SignInNeeded or Refused (429)."""
        user = await self.current(request)
        if user is None:
            raise SignInNeeded(request.url.path)
        retry = await request.app.state.limiter.hit(f"user:{user.subject}", self.rate_limit_per_minute)
        if retry is not None:
            response = self.refused(request, user, "too_many", 429)
            response.headers["Retry-After"] = str(int(retry))
            raise Refused(response)
        return user

    async def signed_in_as(self, request: Request, role: str) -> Identity:
        """The signed-in user holding ``role``; raises as ``signed_in`` does, or Refused (403) for another role."""
        user = await self.signed_in(request)
        if role not in user.roles:
            self.refuse(request, user, "forbidden", 403)
        return user

    async def posted(self, request: Request, role: str | None = None) -> tuple[Identity, dict[str, str]]:
        """A signed-in user's form with a valid CSRF token (the user holding ``role``, when one is named: checked
        first); raises Refused (403) for another role or a token that does not match."""
        user = await (self.signed_in(request) if role is None else self.signed_in_as(request, role))
        form = await self.form_with_csrf(request)
        if form is None:
            self.refuse(request, user, "csrf", 403)
        return user, form

    @staticmethod
    def form_page(
        router: APIRouter,
        path: str,
        guard: Callable[[Request], Awaitable[Identity]],
        page: Callable[[Request, Identity], Awaitable[Response]],
    ) -> None:
        """The GET route of a page with a form: for the user ``guard`` lets in, ``page`` with the form blank (its
        POST route shows the page again, with what was typed and what was refused)."""

        async def shown(request: Request) -> Response:
            return await page(request, await guard(request))

        router.add_api_route(path, shown, methods=["GET"], response_class=HTMLResponse, name=page.__name__)

    async def read(self, request: Request, user: Identity | None, path: str, **kwargs: Any) -> Reply:
        """A GET the page cannot do without: its Reply, or Refused with the refusal page (``trouble``) for one that
        did not succeed."""
        found = await self.call(request, user, "GET", path, **kwargs)
        if not found.ok:
            raise Refused(self.trouble(request, user, found))
        return found

    @staticmethod
    def back(path: str, notice: str | None = None, error: str | None = None) -> RedirectResponse:
        query = f"?notice={quote(notice)}" if notice else f"?error={quote(error)}" if error else ""
        return RedirectResponse(path + query, status_code=303)

    def after(self, target: str, reply: Reply) -> RedirectResponse:
        """Back to ``target`` with "done" or the Problem's type (the page shows the catalogue's sentence for it)."""
        return self.back(target, notice="done") if reply.ok else self.back(target, error=problem_key(reply.body))

    def problem(self, request: Request, reply: Reply) -> str:
        """The refusal as the catalogue's sentence for its Problem type, in the page's language."""
        return problem_sentence(reply.body, self.lang_of(request))


def problem_kind(body: Any) -> str:
    """A Problem's type without the base URL (``.../consent-missing`` -> ``consent-missing``); "" for none."""
    kind = body.get("type") if isinstance(body, dict) else None
    return str(kind).rsplit("/", 1)[-1] if kind else ""


def problem_key(body: Any) -> str:
    """The Problem's type if the staff catalogue has a sentence for it, else "other" (never the English detail)."""
    kind = problem_kind(body)
    return kind if kind in PROBLEMS["en"] else "other"


def problem_sentence(body: Any, lang: str) -> str:
    return PROBLEMS[lang][problem_key(body)]


def api_time(value: Any) -> datetime | None:
    """An API timestamp (ISO 8601; one without a zone is UTC), or None for nothing or nonsense."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def whole_number(text: str | None) -> int | str | None:
    """A form's number: an int, None for nothing, or the text itself (the API then says what is wrong)."""
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        return text.strip()


def safe_next(request: Request, value: str | None = None) -> str:
    target = value if value is not None else request.query_params.get("next", "")
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else "/ui/"


def field_errors(
    problem: Any, lang: str, fields: Mapping[str, str] | Iterable[str], unmatched: str | None = "form"
) -> dict[str, str]:
    """Problem Details' ``errors`` as one message per form field, in the UI's language.

    ``fields`` maps the API's field names to the form's (or names fields called the same in
    both). An error on no named field goes to ``unmatched`` (or is dropped when that is None);
    with no field errors at all, the catalogue's sentence for the Problem's type does.
    """
    names = fields if isinstance(fields, Mapping) else {name: name for name in fields}
    messages = FIELD_ERRORS[lang]
    errors: dict[str, str] = {}
    for error in (problem or {}).get("errors") or []:
        location = [str(part) for part in error.get("location", []) if part not in ("body", "address")]
        field = next((names[part] for part in location if part in names), unmatched)
        if field is not None:
            errors.setdefault(field, messages.get(str(error.get("type", ""))) or messages["value_error"])
    if not errors and unmatched is not None and isinstance(problem, dict):
        errors[unmatched] = problem_sentence(problem, lang)
    return errors
