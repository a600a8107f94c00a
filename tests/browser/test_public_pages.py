"""A newcomer's own pages in headless Chromium, in front of the real stack: the course catalogue, the partner
directory and the meeting offers in Arabic (right to left) and Ukrainian, filtered with the forms, the language
switched with the filters kept; and the information pack installed by its service worker, read again with the
network off. axe-core finds no serious or critical violation; the screenshots go to ``docs/screenshots``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.ui import catalogues
from tests.browser.conftest import Browsing, Stack, launch_args
from tests.browser.showcase import document, strictly_accessible


async def layout(page: Any) -> dict[str, Any]:
    """Where things are: the text direction, and the filter form's first and last field's left edges."""
    result: dict[str, Any] = await page.evaluate(
        """() => {
            const fields = [...document.querySelectorAll("form.filters > p")];
            return {
                direction: getComputedStyle(document.body).direction,
                align: getComputedStyle(document.querySelector("h1")).textAlign,
                first: fields[0].getBoundingClientRect().left,
                second: fields[1].getBoundingClientRect().left,
            };
        }"""
    )
    return result


async def test_a_newcomer_reads_and_filters_the_public_pages_in_arabic_and_ukrainian(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    async with async_playwright() as p:
        browser = await p.chromium.launch(**launch_args())
        page = await browser.new_page(viewport={"width": 1100, "height": 900})

        # --- Arabic: right to left, the page's words and the languages' names in Arabic ----------------------
        await page.goto(f"{stack.url}/ui/meeting-offers?lang=ar")
        html = page.locator("html")
        assert (await html.get_attribute("lang"), await html.get_attribute("dir")) == ("ar", "rtl")
        await page.get_by_role("heading", name="لقاءات", level=1).wait_for()
        placed = await layout(page)
        assert placed["direction"] == "rtl" and placed["align"] in ("start", "right")
        assert placed["first"] > placed["second"], f"the first filter stands rightmost, right to left: {placed}"
        cafe = page.locator("ul.cards > li").filter(has=page.get_by_role("heading", name="Sprachcafé", exact=True))
        text = await cafe.inner_text()
        for shown in ("مقهى اللغة", "للجميع", "العربية", "الأوكرانية", "Rathaus Landsberg am Lech"):
            assert shown in text, (shown, text)
        assert "language_cafe" not in text and "everyone" not in text
        await strictly_accessible(browsing, page, "meeting offers (ar)")
        await document(browsing, page, "public-meeting-offers-ar")

        # Women only, with childcare: the form narrows the list and keeps the choice.
        await page.get_by_label("لمن").select_option("women")
        await page.get_by_label("مع رعاية الأطفال فقط").check()
        await page.get_by_role("button", name="عرض").click()
        await page.wait_for_url("**childcare=true**")
        women = await page.locator("ul.cards h2").all_inner_texts()
        assert women == ["Frauen-Schwimmkurs", "Frauentreff"], women
        assert await page.get_by_role("status").inner_text() == "عدد العروض: 2"
        assert await page.get_by_label("مع رعاية الأطفال فقط").is_checked()
        assert await html.get_attribute("dir") == "rtl", "the language stays with the filter"

        await page.goto(f"{stack.url}/ui/courses?lang=ar")
        assert await html.get_attribute("dir") == "rtl"
        assert await page.get_by_role("columnheader", name="المقاعد المتاحة").count() == 1
        assert "دورة الاندماج" in await page.locator("table").inner_text()
        await strictly_accessible(browsing, page, "courses (ar)")
        await document(browsing, page, "public-courses-ar")

        await page.goto(f"{stack.url}/ui/info/ar")
        assert await html.get_attribute("dir") == "rtl"
        assert await page.locator("article#info-pack").get_attribute("dir") == "rtl"
        await strictly_accessible(browsing, page, "information pack (ar)")

        # --- Ukrainian: left to right; the switch keeps the filters -----------------------------------------
        await page.goto(f"{stack.url}/ui/courses?lang=uk")
        assert (await html.get_attribute("lang"), await html.get_attribute("dir")) == ("uk", "ltr")
        await page.get_by_role("heading", name="Курси", level=1).wait_for()
        placed = await layout(page)
        assert placed["direction"] == "ltr" and placed["first"] < placed["second"]
        everything = await page.locator("table tbody tr").count()
        await page.get_by_label("Лише для жінок").check()
        await page.get_by_role("button", name="Показати").click()
        await page.wait_for_url("**women_only=true**")
        titles = await page.locator("table tbody th").all_inner_texts()
        assert len(titles) == 1 and titles[0].startswith("Frauenkurs"), titles
        assert "лише для жінок" in titles[0] and "з доглядом за дітьми" in titles[0]
        assert everything > 1
        await page.get_by_label("Район міста").select_option("Altstadt")
        await page.get_by_role("button", name="Показати").click()
        await page.wait_for_url("**district=Altstadt**")
        assert await page.locator("table tbody tr").count() == 1, "both filters hold"
        await strictly_accessible(browsing, page, "courses (uk)")
        await document(browsing, page, "public-courses-uk")

        await page.goto(f"{stack.url}/ui/partners?lang=uk&language=ar")
        await page.get_by_role("heading", name="Довідник партнерів", level=1).wait_for()
        names = await page.locator("ul.cards h2").all_inner_texts()
        assert "Caritasverband Landsberg am Lech" in names and "Jobcenter Landsberg am Lech" not in names, names
        caritas = await page.locator("ul.cards > li", has_text="Caritasverband").inner_text()
        assert "Благодійна організація" in caritas and "арабська" in caritas, caritas
        await strictly_accessible(browsing, page, "partners (uk)")
        await document(browsing, page, "public-partners-uk")

        await page.goto(f"{stack.url}/ui/meeting-offers?lang=uk&district=Weststadt")
        places = await page.locator("ul.cards dd", has_text="Weststadt").count()
        assert places == await page.locator("ul.cards > li").count() > 0
        await strictly_accessible(browsing, page, "meeting offers (uk)")
        await document(browsing, page, "public-meeting-offers-uk")
        # The switch to Arabic keeps the Ortsteil; the choice is remembered on the next page.
        await page.get_by_role("navigation", name="Мова цієї сторінки").get_by_role("link", name="العربية").click()
        await page.wait_for_url("**lang=ar**")
        assert "district=Weststadt" in page.url and await html.get_attribute("dir") == "rtl"
        await page.goto(f"{stack.url}/ui/partners")
        assert await html.get_attribute("lang") == "ar"
        # A first visit from a phone set to Ukrainian opens in Ukrainian.
        phone = await (await browser.new_context(locale="uk-UA")).new_page()
        await phone.goto(f"{stack.url}/ui/meeting-offers")
        assert await phone.locator("html").get_attribute("lang") == "uk"
        await browser.close()
    browsing.report()


async def test_the_information_pack_installs_and_opens_offline(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        manifest = await api.get("/ui/manifest.webmanifest")
        assert manifest.headers["content-type"] == "application/manifest+json"
        assert (manifest.json()["scope"], manifest.json()["start_url"]) == ("/ui/info", "/ui/info")
        for icon in manifest.json()["icons"]:
            assert (await api.get(icon["src"])).headers["content-type"].startswith(icon["type"]), icon
        worker = await api.get("/ui/sw.js")
        assert worker.headers["content-type"].startswith("text/javascript")
        assert worker.headers["cache-control"] == "no-cache"
        page_policy = (await api.get("/ui/info/de")).headers["content-security-policy"]
        assert "worker-src 'self'" in page_policy and "script-src 'self'" in page_policy
        # Every page in every language of the pack, right to left where the language is.
        for lang in catalogues.LANGUAGES:
            for path in ("/ui/info", f"/ui/info/{lang}", "/ui/courses", "/ui/partners", "/ui/meeting-offers"):
                reply = await api.get(path, params={"lang": lang})
                direction = "rtl" if lang in ("ar", "fa") else "ltr"
                assert reply.status_code == 200 and f'<html lang="{lang}" dir="{direction}">' in reply.text, path
                assert "{n}" not in reply.text, "every count is filled in"
        assert (await api.get("/ui/info/xx")).status_code == 404

    browsing = Browsing(stack)
    async with async_playwright() as p:
        browser = await p.chromium.launch(**launch_args())
        context = await browser.new_context()
        page = await context.new_page()
        first = await page.goto(f"{stack.url}/ui/info/ar")
        assert first is not None and first.ok
        # The worker is installed (every language kept) and controls the pack's pages.
        await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        await page.wait_for_function("navigator.serviceWorker.controller !== null")
        title = await page.get_by_role("heading", level=1).inner_text()
        kept_at = await page.evaluate(
            "caches.open('info-pack-v1').then((c) => c.match('/ui/info/ar')).then((r) => r.headers.get('date'))"
        )
        assert kept_at
        await asyncio.sleep(1.2)  # a page from the network now would carry a later Date

        await context.set_offline(True)
        again = await page.reload()
        assert again is not None and again.ok and again.from_service_worker
        assert again.headers["date"] == kept_at, "the copy kept on the device, not the network's"
        assert await page.get_by_role("heading", level=1).inner_text() == title
        assert await page.locator("article#info-pack").get_attribute("dir") == "rtl"
        assert await page.evaluate("getComputedStyle(document.body).direction") == "rtl", "the style is kept too"
        # Another language, never opened, was kept at install.
        other = await page.goto(f"{stack.url}/ui/info/uk")
        assert other is not None and other.ok
        await page.get_by_role("heading", name="Ласкаво просимо до міста Ландсберг-ам-Лех", level=1).wait_for()
        await strictly_accessible(browsing, page, "information pack (uk), offline")
        await document(browsing, page, "public-info-pack-uk-offline")
        # What the worker does not keep is not there offline: only the pack is.
        try:
            await page.goto(f"{stack.url}/ui/courses")
            reached = True
        except Exception:
            reached = False
        assert not reached, "the course catalogue is not kept offline"
        await context.set_offline(False)
        await browser.close()
    browsing.report()
