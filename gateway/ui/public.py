"""Pages without sign-in (the information pack, the course and partner lists) and signing in and out: with the
embedded sign-in's form, or in production at the city's OpenID provider (``gateway.oidc``)."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Collection
from typing import Any
from urllib.parse import urlencode

from babel import negotiate_locale
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from contracts.vocabulary import MeetingAudience, MeetingKind
from gateway.auth import Busy, Unauthenticated
from gateway.oidc import (
    LOGIN_COOKIE,
    LOGIN_COOKIE_PATH,
    LOGIN_SECONDS,
    REFRESH_COOKIE,
    REFRESH_COOKIE_PATH,
    RelyingParty,
    Session,
    SignInFailed,
)
from gateway.throttle import SignInThrottle, Throttled, client_key
from gateway.ui.catalogues import LANGUAGES, Words, autonym, direction, language_name
from gateway.ui.kit import CSP, CSRF_COOKIE, HERE, LANG_COOKIE, SESSION_COOKIE, Kit, safe_next

log = logging.getLogger(__name__)

#: The information pack's languages, which the newcomers' pages speak too; ar and fa are written right to left.
INFO_LANGS = LANGUAGES
STATIC = HERE / "static"
#: The staff pages' policy, and what the newcomers' pages add: their one script (registering the service worker),
#: the worker itself and the manifest, all from this origin.
PUBLIC_CSP = f"{CSP}; script-src 'self'; worker-src 'self'; manifest-src 'self'; connect-src 'self'"
#: Codes as the newcomers' pages name them: English message ids of ``gateway/ui/locale`` (``catalogues``).
LABELS: dict[str, dict[str, str]] = {
    "kind": {
        "language_cafe": "Language café",
        "open_school": "Open school",
        "sports_club": "Sports club",
        "womens_group": "Women's group",
        "volunteer_tandem": "Volunteer tandem",
        "meeting_place": "Meeting place",
    },
    "audience": {
        "everyone": "for everyone",
        "women": "women only",
        "families": "for families",
        "youth": "for young people",
        "children": "for children",
        "seniors": "for older people",
    },
    "course": {
        "integration_course": "Integration course",
        "german_second_language": "German as a second language",
        "job_german": "German for work",
        "literacy": "Literacy",
        "english": "English course",
        "health": "Health",
        "cultural_education": "Cultural education",
        "civic_education": "Civic education",
        "parents_and_women": "Parents and women",
        "orientation": "Orientation course",
    },
    "partner": {
        "charity": "Charity",
        "job_centre": "Job centre",
        "chamber": "Chamber",
        "adult_education": "Adult education",
        "district_office": "District office",
        "city_department": "City department",
        "youth_service": "Youth service",
        "volunteer_group": "Volunteer group",
    },
    "service": {
        "asylum_social_counselling": "Asylum social counselling",
        "migration_counselling": "Migration counselling",
        "youth_migration_service": "Youth migration service",
        "integration_course": "German course",
        "course_with_childcare": "Course with childcare",
        "job_placement": "Job placement",
        "qualification_recognition": "Recognition of qualifications",
        "housing_advice": "Housing advice",
        "health_advice": "Health advice",
        "return_counselling": "Return and perspective counselling",
        "recognition_counselling": "Recognition counselling",
        "job_specific_german": "Job-specific German",
        "eu_job_mobility": "Advice for EU skilled workers",
        "meeting_offer": "Meeting offer",
    },
}
#: The meeting offers' filters (the partners service's vocabulary, as ``contracts`` names it).
MEETING_KINDS = tuple(k.value for k in MeetingKind)
MEETING_AUDIENCES = tuple(a.value for a in MeetingAudience)


def add_routes(router: APIRouter, ui: Kit) -> None:
    def sign_in_page_for(
        request: Request,
        status: int = 200,
        *,
        next_path: str | None = None,
        error_key: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The sign-in page: the provider's button in OIDC mode, else the embedded sign-in's form."""
        oidc: RelyingParty | None = request.app.state.oidc
        error = ui.words(request)[error_key] if error_key else context.pop("error", None)
        return ui.render(
            request,
            "sign_in.html",
            status,
            next=next_path or safe_next(request),
            error=error,
            provider=oidc.display_name if oidc else None,
            **context,
        )

    def start_session(response: Response, oidc: RelyingParty, session: Session) -> None:
        ui.set_cookie(response, SESSION_COOKIE, session.access_token, max_age=session.expires_in)
        ui.set_cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32))  # a fresh token for the new session
        sealed = oidc.seal_refresh(session)
        if sealed is None:
            drop_cookie(response, REFRESH_COOKIE, REFRESH_COOKIE_PATH)
        else:
            response.set_cookie(
                REFRESH_COOKIE,
                sealed,
                max_age=session.refresh_expires_in,
                path=REFRESH_COOKIE_PATH,
                httponly=True,
                samesite="lax",
                secure=ui.secure_cookies,
            )

    def drop_cookie(response: Response, name: str, path: str) -> None:
        response.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=ui.secure_cookies)

    @router.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_page(request: Request) -> Response:
        user = await ui.current(request)
        oidc: RelyingParty | None = request.app.state.oidc
        if oidc is not None and user is None and REFRESH_COOKIE in request.cookies:
            # An expired session comes here (Kit.signed_in); the refresh token renews it without a round trip.
            session = await oidc.refresh(request.app.state.client, request.cookies[REFRESH_COOKIE])
            if session is not None:
                renewed = RedirectResponse(safe_next(request), status_code=303)
                start_session(renewed, oidc, session)
                return renewed
            response = sign_in_page_for(request)
            drop_cookie(response, REFRESH_COOKIE, REFRESH_COOKIE_PATH)
            return response
        return sign_in_page_for(request, user=user)

    @router.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request) -> Response:
        form = await ui.form_with_csrf(request)
        if form is None:
            return ui.refused(request, None, "csrf", 403)
        issuer = request.app.state.issuer
        if issuer is None:  # OIDC mode: no passwords are taken here
            return ui.refused(request, None, "not_found", 404)
        username = form.get("username", "")[:100]
        next_path = safe_next(request, form.get("next"))
        sign_ins: SignInThrottle = request.app.state.sign_ins
        try:
            token = await sign_ins.sign_in(issuer, username, form.get("password", "")[:200], client_key(request))
        except (Throttled, Busy) as exc:
            status, key = (429, "too_many") if isinstance(exc, Throttled) else (503, "public_sign_in_busy")
            page = ui.render(
                request, "sign_in.html", status, error=ui.words(request)[key], username=username, next=next_path
            )
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        except Unauthenticated:
            return ui.render(
                request, "sign_in.html", 401, error=ui.words(request)["bad_sign_in"], username=username, next=next_path
            )
        response = RedirectResponse(next_path, status_code=303)
        ui.set_cookie(response, SESSION_COOKIE, token, max_age=issuer.token_minutes * 60)
        ui.set_cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32))  # a fresh token for the new session
        return response

    @router.get("/oidc/login")
    async def oidc_login(request: Request) -> Response:
        """To the provider's sign-in, with state, nonce and the PKCE challenge; the rest waits in a sealed cookie."""
        oidc: RelyingParty | None = request.app.state.oidc
        if oidc is None:
            return ui.refused(request, None, "not_found", 404)
        attempt = oidc.begin(safe_next(request), oidc.redirect_uri(str(request.base_url)))
        try:
            url = await oidc.authorization_url(request.app.state.client, attempt)
        except SignInFailed as exc:
            log.warning("UI sign-in: %s", exc.reason)
            if exc.untrusted:  # not a passing outage: a setting is missing, which the log line names
                return sign_in_page_for(request, 502, error_key="public_oidc_untrusted")
            return sign_in_page_for(request, 503, error_key="public_oidc_unreachable")
        response = RedirectResponse(url, status_code=303)
        # SameSite=Lax: the provider's redirect back is a top-level GET, which still carries it.
        response.set_cookie(
            LOGIN_COOKIE,
            oidc.seal_attempt(attempt),
            max_age=LOGIN_SECONDS,
            path=LOGIN_COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=ui.secure_cookies,
        )
        return response

    @router.get("/oidc/callback")
    async def oidc_callback(request: Request) -> Response:
        """The provider's answer: only for the sign-in this browser began (state), once (the cookie goes, and the
        provider takes a code once), and only with this sign-in's PKCE verifier and nonce."""
        oidc: RelyingParty | None = request.app.state.oidc
        if oidc is None:
            return ui.refused(request, None, "not_found", 404)
        attempt = oidc.open_attempt(request.cookies.get(LOGIN_COOKIE))
        state = request.query_params.get("state", "")
        response: Response
        if attempt is None or not hmac.compare_digest(attempt.state.encode(), state.encode()):
            log.info("UI sign-in: callback without a matching sign-in (missing, expired or other state)")
            response = sign_in_page_for(request, 403, next_path="/ui/", error_key="public_oidc_state")
        elif "error" in request.query_params or not request.query_params.get("code"):
            log.info("UI sign-in: the provider answered %r", request.query_params.get("error", "without a code")[:64])
            response = sign_in_page_for(request, 401, next_path=attempt.next, error_key="public_oidc_refused")
        else:
            try:
                session = await oidc.finish(request.app.state.client, attempt, request.query_params["code"])
            except SignInFailed as exc:
                log.warning("UI sign-in failed: %s", exc.reason)
                key = "public_oidc_unreachable" if exc.unreachable else "public_oidc_failed"
                key = "public_oidc_untrusted" if exc.untrusted else key
                status = 503 if exc.unreachable and not exc.untrusted else 502
                response = sign_in_page_for(request, status, next_path=attempt.next, error_key=key)
            else:
                response = RedirectResponse(safe_next(request, attempt.next), status_code=303)
                start_session(response, oidc, session)
        drop_cookie(response, LOGIN_COOKIE, LOGIN_COOKIE_PATH)  # one answer per sign-in, whatever it was
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        if await ui.form_with_csrf(request) is None:
            return ui.refused(request, await ui.current(request), "csrf", 403)
        oidc: RelyingParty | None = request.app.state.oidc
        # The provider's own session is ended from a page of ours: a form's redirect to another site is what the
        # CSP's form-action 'self' forbids.
        response = RedirectResponse("/ui/signed-out" if oidc else "/ui/", status_code=303)
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            ui.delete_cookie(response, name)
        drop_cookie(response, REFRESH_COOKIE, REFRESH_COOKIE_PATH)
        return response

    @router.get("/signed-out", response_class=HTMLResponse)
    async def signed_out(request: Request) -> Response:
        oidc: RelyingParty | None = request.app.state.oidc
        if oidc is None:
            return RedirectResponse("/ui/", status_code=303)
        home = f"{oidc.public_url or str(request.base_url).rstrip('/')}/ui/"
        end_session = await oidc.end_session_url(request.app.state.client, home)
        return sign_in_page_for(
            request, next_path="/ui/", user=await ui.current(request), signed_out=True, end_session=end_session
        )

    add_newcomer_routes(router, ui)


# --- the newcomers' own pages: eight languages, filters, an installable information pack ------------------------


def page_lang(request: Request) -> str:
    """The newcomer's language: asked for (``?lang=``), else kept from before (cookie), else the first of the
    browser's languages the pages speak (a phone set to Arabic opens them in Arabic), else German."""
    asked = request.query_params.get("lang")
    if asked in INFO_LANGS:
        return asked
    stored = request.cookies.get(LANG_COOKIE)
    if stored in INFO_LANGS:
        return stored
    return browser_lang(request.headers.get("accept-language", "")) or "de"


def browser_lang(header: str) -> str | None:
    """``Accept-Language: uk-UA,uk;q=0.9,en;q=0.5`` -> ``uk``: the weights decide, a malformed part is skipped."""
    weighted = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, weight = part.strip().partition(";q=")
        try:
            quality = float(weight) if weight else 1.0
        except ValueError:
            continue
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag))
    found = negotiate_locale([tag for _, _, tag in sorted(weighted)], list(INFO_LANGS), sep="-")
    return str(found) if found else None


def chosen(request: Request, name: str, allowed: Collection[str]) -> str | None:
    """A filter's value when it is one the form offers; a hand-edited other value is no filter, not an error page
    (the API itself answers a malformed one with a Problem)."""
    value = request.query_params.get(name)
    return value if value in allowed else None


def ticked(request: Request, name: str) -> bool:
    return request.query_params.get(name) == "true"


def add_newcomer_routes(router: APIRouter, ui: Kit) -> None:
    def render(
        request: Request, template: str, status: int = 200, *, lang: str | None = None, **context: Any
    ) -> HTMLResponse:
        lang = lang or page_lang(request)
        words = Words(lang)

        def switch(code: str) -> str:
            """This page in another language, with its filters kept."""
            if request.url.path.startswith("/ui/info/"):
                return f"/ui/info/{code}"
            query = {k: v for k, v in request.query_params.items() if k != "lang"}
            return f"{request.url.path}?{urlencode({**query, 'lang': code})}"

        html = ui.env.get_template(template).render(
            _=words,
            lang=lang,
            dir=direction(lang),
            path=request.url.path,
            languages=INFO_LANGS,
            switch=switch,
            autonym=autonym,
            language_name=lambda code: language_name(code, lang),
            labels=LABELS,
            language_options=[(code, language_name(code, lang)) for code in INFO_LANGS],
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PUBLIC_CSP})
        if request.query_params.get("lang") in INFO_LANGS:
            ui.set_cookie(response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
        return response

    def trouble(request: Request, status: int, lang: str | None = None) -> HTMLResponse:
        message = "Not found." if status == 404 else "The page could not be loaded. Please try again in a moment."
        return render(request, "public_message.html", status, lang=lang, message=message)

    @router.get("/info", response_class=HTMLResponse)
    async def info_packs(request: Request) -> Response:
        packs = await ui.call(request, None, "GET", "info-packs")
        if not packs.ok:
            return trouble(request, 503)
        return render(request, "public_info_list.html", packs=packs.body)

    @router.get("/info/{lang}", response_class=HTMLResponse)
    async def info_pack(lang: str, request: Request) -> Response:
        """A pack page speaks the pack's language throughout, so that the copy kept offline is whole."""
        if lang not in INFO_LANGS:
            return trouble(request, 404)
        pack = await ui.call(request, None, "GET", f"info-packs/{lang}")
        if not pack.ok:
            return trouble(request, 404 if pack.status == 404 else 503, lang)
        return render(request, "public_info_pack.html", lang=lang, pack=pack.body)

    @router.get("/courses", response_class=HTMLResponse)
    async def courses(request: Request) -> Response:
        """The course catalogue, filtered by language of instruction, Ortsteil, childcare and women only."""
        every = await ui.call(request, None, "GET", "courses", params={"page_size": 200})
        if not every.ok:
            return trouble(request, 503)
        districts = sorted({c["district"] for c in every.items() if c.get("district")})
        filters = {
            "language": chosen(request, "language", INFO_LANGS),
            "district": chosen(request, "district", districts),
            "childcare": ticked(request, "childcare"),
            "women_only": ticked(request, "women_only"),
        }
        params: dict[str, Any] = {"page_size": 200, "language": filters["language"], "district": filters["district"]}
        if filters["childcare"]:
            params["childcare_offered"] = "true"
        if filters["women_only"]:
            params["women_only"] = "true"
        found = await ui.call(request, None, "GET", "courses", params={k: v for k, v in params.items() if v})
        if not found.ok:
            return trouble(request, 503)
        return render(
            request,
            "public_courses.html",
            courses=found.items(),
            filters=filters,
            district_options=[(d, d) for d in districts],
        )

    @router.get("/meeting-offers", response_class=HTMLResponse)
    async def meeting_offers(request: Request) -> Response:
        """Meeting offers for newcomers, filtered by language, kind, audience (women only among them), Ortsteil
        and childcare."""
        every = await ui.call(request, None, "GET", "partners/meeting-offers", params={"page_size": 200})
        if not every.ok:
            return trouble(request, 503)
        districts = sorted({o["district"] for o in every.items() if o.get("district")})
        filters: dict[str, Any] = {
            "language": chosen(request, "language", INFO_LANGS),
            "kind": chosen(request, "kind", MEETING_KINDS),
            "audience": chosen(request, "audience", MEETING_AUDIENCES),
            "district": chosen(request, "district", districts),
            "childcare": ticked(request, "childcare"),
        }
        params: dict[str, Any] = {"page_size": 200, **{k: v for k, v in filters.items() if v and k != "childcare"}}
        if filters["childcare"]:
            params["childcare"] = "true"
        found = await ui.call(request, None, "GET", "partners/meeting-offers", params=params)
        if not found.ok:
            return trouble(request, 503)
        words = Words(page_lang(request))
        return render(
            request,
            "public_meeting_offers.html",
            offers=found.items(),
            filters=filters,
            district_options=[(d, d) for d in districts],
            kind_options=[(k, words(LABELS["kind"][k])) for k in MEETING_KINDS],
            audience_options=[(a, words(LABELS["audience"][a])) for a in MEETING_AUDIENCES],
        )

    @router.get("/partners", response_class=HTMLResponse)
    async def partners(request: Request) -> Response:
        """The partner directory, filtered by a language spoken and the Ortsteil of one of the partner's places."""
        every = await ui.call(request, None, "GET", "partners", params={"page_size": 200})
        if not every.ok:
            return trouble(request, 503)
        districts = sorted({loc["district"] for p in every.items() for loc in p["locations"] if loc.get("district")})
        filters = {
            "language": chosen(request, "language", INFO_LANGS),
            "district": chosen(request, "district", districts),
        }
        params = {"page_size": 200, **{k: v for k, v in filters.items() if v}}
        found = await ui.call(request, None, "GET", "partners", params=params)
        if not found.ok:
            return trouble(request, 503)
        return render(
            request,
            "public_partners.html",
            partners=found.items(),
            filters=filters,
            district_options=[(d, d) for d in districts],
        )

    @router.get("/manifest.webmanifest", include_in_schema=False)
    async def manifest() -> Response:
        """The web app manifest: the information pack installs as an app that opens at the pack's list."""
        return Response(
            (STATIC / "manifest.webmanifest").read_bytes(),
            media_type="application/manifest+json",
            headers={"Cache-Control": "no-cache"},
        )

    @router.get("/sw.js", include_in_schema=False)
    async def service_worker() -> Response:
        """The service worker, served from ``/ui/`` so that it may control ``/ui/info`` (a worker under
        ``/ui/static/`` could control only that folder); never cached, so that a new version is found at once."""
        return Response(
            (STATIC / "sw.js").read_bytes(),
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )
