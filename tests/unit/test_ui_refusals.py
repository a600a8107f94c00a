"""The staff UI's refusals (issue 17): a page ends early by raising, and the UI router's one handler answers with
the response the refusal carries; what a refusal says is the catalogue's sentence for its Problem type."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Response
from fastapi.testclient import TestClient

from chassis.errors import PROBLEM_BASE
from gateway.ui import PageRoute
from gateway.ui.kit import Refused, SignInNeeded, field_errors, problem_key, problem_sentence
from gateway.ui.words import PROBLEMS

BASE = PROBLEM_BASE


def test_the_one_handler_answers_with_the_refusals_response() -> None:
    router = APIRouter(prefix="/ui", route_class=PageRoute)

    @router.get("/private")
    async def private() -> Response:
        raise SignInNeeded("/ui/private")

    @router.get("/refused")
    async def refused() -> Response:
        raise Refused(Response("nein", status_code=403, headers={"Retry-After": "7"}))

    app = FastAPI()
    app.include_router(router)
    client = TestClient(app)
    redirect = client.get("/ui/private", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == "/ui/sign-in?next=/ui/private"
    answer = client.get("/ui/refused")
    assert (answer.status_code, answer.text, answer.headers["retry-after"]) == (403, "nein", "7")


def test_a_refusal_is_the_sentence_for_its_type_never_the_detail() -> None:
    consent = {"type": BASE + "consent-missing", "detail": "the referral cannot be sent: consent missing"}
    assert problem_key(consent) == "consent-missing"
    assert problem_sentence(consent, "de") == "Die Vermittlung kann nicht gesendet werden: Einwilligung fehlt."
    unknown = {"type": BASE + "something-new", "detail": "Call 0800 now"}
    assert problem_key(unknown) == problem_key({"detail": "x"}) == problem_key(None) == "other"
    assert problem_sentence(unknown, "en") == PROBLEMS["en"]["other"]
    assert field_errors(unknown, "de", ("name",)) == {"form": PROBLEMS["de"]["other"]}
