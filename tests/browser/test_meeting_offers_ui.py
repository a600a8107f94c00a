"""The public meeting offers page (Begegnung) in headless Chromium, in front of the real stack.

Caritas publishes a language café held in Ukrainian through the gateway's API (signed in as its partner
user); a newcomer, not signed in, finds it on the public page in German and in English, narrows the list by
language, kind and audience with the form, and gets no error for a hand-edited filter. axe-core checks the
pages; screenshots go to the test's tmp dir. A caseworker suggests a meeting offer on a case's plan: it becomes a
participation goal (interaction).
"""

from __future__ import annotations

import httpx

from gateway.ui.public import MEETING_AUDIENCES, MEETING_KINDS
from services.partners.domain import MeetingAudience, MeetingKind
from tests.browser.conftest import Browsing, Stack, launch_args
from tests.conftest import newcomer

CAFE = {
    "kind": "language_cafe",
    "title": "Сніданок українською - Frühstück auf Ukrainisch",
    "languages": ["uk", "de"],
    "audience": "everyone",
    "schedule": "jeden Freitag, 9 bis 11 Uhr",
    "place_name": "Caritas-Zentrum",
    "district": "Weststadt",
    "description": "Ein Frühstück zum Deutschlernen und Kennenlernen.",
}


def test_the_page_offers_exactly_the_partners_services_filters() -> None:
    assert tuple(MeetingKind) == MEETING_KINDS
    assert tuple(MeetingAudience) == MEETING_AUDIENCES


async def test_a_newcomer_finds_meeting_offers_by_language_kind_and_audience(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        as_caritas = await stack.bearer(api, "caritas")
        made = await api.post("/api/v1/partners/caritas-landsberg/meeting-offers", json=CAFE, headers=as_caritas)
        assert made.status_code == 201, made.text
        # Caritas cannot publish in the city's name.
        other = await api.post(
            "/api/v1/partners/stadt-landsberg-integration/meeting-offers", json=CAFE, headers=as_caritas
        )
        assert other.status_code == 403

        browser = await p.chromium.launch(**launch_args())
        page = await browser.new_page()
        await page.goto(f"{stack.url}/ui/meeting-offers?lang=de")
        await page.get_by_role("heading", name="Begegnung", level=1).wait_for()
        cards = page.locator("ul.cards > li")
        titles = await page.locator("ul.cards h2").all_inner_texts()
        assert CAFE["title"] in titles and "Frauentreff" in titles and "Sprachcafé" in titles
        cafe = cards.filter(has_text=CAFE["title"])
        text = await cafe.inner_text()
        # Words, not codes: the kind, the audience, the languages by name, the organiser by name.
        for shown in (
            "Sprachcafé",
            "für alle",
            "Ukrainisch",
            "Deutsch",
            "Caritasverband Landsberg am Lech",
            "jeden Freitag, 9 bis 11 Uhr",
            "Caritas-Zentrum (Weststadt)",
        ):
            assert shown in text, (shown, text)
        assert "language_cafe" not in text and "everyone" not in text
        await browsing.accessible(page, "meeting offers")
        await browsing.shot(page, "meeting-offers-de")

        # The form narrows the list: Ukrainian-speaking offers, then language cafés only.
        await page.get_by_label("Sprache", exact=True).select_option("uk")
        await page.get_by_role("button", name="Anzeigen").click()
        await page.wait_for_url("**language=uk**")
        ukrainian = await page.locator("ul.cards h2").all_inner_texts()
        assert CAFE["title"] in ukrainian and "Frauentreff" not in ukrainian
        assert await page.get_by_label("Sprache", exact=True).input_value() == "uk", "the choice stays selected"
        await page.get_by_label("Art des Angebots").select_option("womens_group")
        await page.get_by_role("button", name="Anzeigen").click()
        await page.wait_for_url("**kind=womens_group**")
        await page.get_by_text("Für diese Auswahl gibt es gerade kein Angebot.").wait_for()
        assert await page.get_by_role("status").inner_text() == "0 Angebote"
        await browsing.accessible(page, "meeting offers, nothing found")

        # Women only, in English: the women's group of the city; a hand-edited filter is no filter, not an error.
        reply = await page.goto(f"{stack.url}/ui/meeting-offers?lang=en&audience=women")
        assert reply is not None and reply.status == 200
        await page.get_by_role("heading", name="Meeting people", level=1).wait_for()
        women = await page.locator("ul.cards h2").all_inner_texts()
        assert women == ["Frauen-Schwimmkurs", "Frauentreff"]
        assert "women only" in await page.locator("ul.cards > li").first.inner_text()
        assert "with childcare" in await page.locator("ul.cards > li").first.inner_text()
        await browsing.accessible(page, "meeting offers (en)")
        await browsing.shot(page, "meeting-offers-en-women")
        reply = await page.goto(f"{stack.url}/ui/meeting-offers?lang=en&kind=disco&language=xx")
        assert reply is not None and reply.status == 200
        assert CAFE["title"] in await page.locator("ul.cards h2").all_inner_texts()
        # The page is linked from every page's navigation.
        await page.goto(f"{stack.url}/ui/?lang=de")
        await page.get_by_role("navigation").get_by_role("link", name="Begegnung").click()
        await page.get_by_role("heading", name="Begegnung", level=1).wait_for()
        await browser.close()
    browsing.report()


async def test_a_caseworker_suggests_a_meeting_offer_as_a_participation_goal(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        _, case = await stack.registered_with_case(api, newcomer(languages=["ar"], preferred_language="ar"))
        as_lotse = await stack.bearer(api, "lotse")
        browser = await p.chromium.launch(**launch_args())
        page = await browser.new_page()
        await browsing.sign_in(page, "lotse")
        await page.goto(f"{stack.url}/ui/cases/{case}")
        offers = page.locator("#meeting-offers > li")
        # Those held in Arabic, the only language the person gave, come first; the Ukrainian café (German,
        # Ukrainian, Russian) after.
        shown = [text.split("\n")[0] for text in await offers.all_inner_texts()]
        assert shown.index("Frauentreff (Frauentreff, nur für Frauen)") < shown.index(
            "Sprachcafé Ukrainisch-Deutsch (Sprachcafé, für alle)"
        ), shown
        await browsing.accessible(page, "case with meeting offers")
        await page.get_by_role("button", name="Als Teilhabe-Ziel aufnehmen: Frauentreff").click()
        await page.wait_for_load_state()
        goal = page.locator("#goals tbody tr", has_text="Teilhabe: Frauentreff")
        await goal.wait_for()
        assert await goal.get_attribute("data-dimension") == "interaction"
        await browsing.shot(page, "case-participation-goal")
        plan = (await api.get(f"/api/v1/cases/{case}", headers=as_lotse)).json()["goals"]
        assert [(g["dimension"], g["title"].split(" (")[0]) for g in plan] == [("interaction", "Teilhabe: Frauentreff")]
        await browser.close()
    browsing.report()
