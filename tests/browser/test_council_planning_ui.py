"""The integration council's, the planning and the district conference pages in headless Chromium, in front of the
real stack.

Six children of newcomer families register in Weststadt (through the API). The analyst enters the Kita places
planned for the next school year and sees the demand against them as charts and tables, downloads the figures as
CSV, puts a proposal before the integration council, accepts and assigns it, finds it in the council report and in
the district conference summary (German, and as a document). axe fails on serious violations; the screenshots go
to docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date
from pathlib import Path

import httpx

from contracts.calendar import today as city_today
from tests.browser.conftest import Browsing, Stack, launch_args
from tests.browser.showcase import document, strictly_accessible
from tests.conftest import eventually, newcomer

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "landsberg"
WESTSTADT = {"street": "Spöttinger Straße", "house_number": "3", "postal_code": "86899", "district": "Weststadt"}


async def test_the_analyst_plans_places_and_follows_a_council_proposal(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    today = city_today()
    # Three toddlers and three school children (their birth dates make the age bands; no band of their own).
    births = [date(today.year - age, 1, 15).isoformat() for age in (1, 1, 2, 7, 8, 8)]
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        as_registrar = await stack.bearer(api, "registrar")
        replies = await asyncio.gather(
            *(
                api.post(
                    "/api/v1/registrations",
                    headers=as_registrar,
                    json=newcomer(birth_date=born, address=WESTSTADT, family_name=f"Nasser {i}"),
                )
                for i, born in enumerate(births)
            )
        )
        assert all(r.status_code == 201 for r in replies), [r.text for r in replies]
        reference = json.loads((REFERENCE / "districts.json").read_text())
        body = {key: reference[key] for key in ("source", "illustrative", "districts")}
        as_admin = await stack.bearer(api, "admin")
        uploaded = await api.put("/api/v1/monitoring/reference/districts", headers=as_admin, json=body)
        assert uploaded.status_code == 200, uploaded.text
        browser = await p.chromium.launch(**launch_args())
        try:
            analyst = await browser.new_page(viewport={"width": 1280, "height": 900})
            await browsing.sign_in(analyst, "statistik")

            # --- planning --------------------------------------------------------------------------------
            async def planned() -> bool:  # monitoring reads the events on its own time
                await analyst.goto(f"{stack.url}/ui/statistics/planning")
                return await analyst.locator("#table-kita tr", has_text="Weststadt").count() == 1

            await eventually(planned, timeout_s=30, interval_s=1)
            first_year = await analyst.locator("#pl-year option").first.get_attribute("value")
            await analyst.get_by_label("Schuljahr", exact=True).select_option(first_year)
            await analyst.get_by_label("Ortsteil", exact=True).select_option("Weststadt")
            await analyst.get_by_label("Art", exact=True).select_option("kita")
            await analyst.get_by_label("geplante Plätze", exact=True).fill("2")
            await analyst.get_by_role("button", name="Erfassen").click()
            await analyst.wait_for_load_state()
            assert await analyst.locator("p.notice").count() == 1
            assert "Weststadt" in (await analyst.locator("#entered-places").inner_text())
            row = await analyst.locator("#table-kita tr", has_text="Weststadt").inner_text()
            assert "2 Plätze" in row and "\u2212" in row, f"two places are too few for three toddlers and more: {row}"
            for chart in ("chart-kita", "chart-school"):
                svg = analyst.locator(f"svg#{chart}")
                assert await svg.get_attribute("role") == "img" and await svg.locator("title").count() == 1
            assert "Nasser" not in await analyst.content()
            await document(browsing, analyst, "analyst-planning")
            await strictly_accessible(browsing, analyst, "planning")

            download = await analyst.request.get(f"{stack.url}/ui/statistics/planning.csv")
            assert download.ok and download.headers["content-type"].startswith("text/csv")
            lines = list(csv.DictReader(io.StringIO(await download.text())))
            weststadt = [x for x in lines if x["district"] == "Weststadt" and x["kind"] == "kita"]
            assert len(weststadt) == 5 and weststadt[0]["places"] == "2"

            # --- the integration council -------------------------------------------------------------------
            await analyst.goto(f"{stack.url}/ui/statistics/council")
            await analyst.locator("#new-proposal #title").fill("Sprachcafé in der Weststadt")
            await analyst.locator("#new-proposal #text").fill("Viele junge Familien sind neu in der Weststadt.")
            await analyst.get_by_role("button", name="Vorschlag anlegen").click()
            await analyst.wait_for_load_state()
            assert (await analyst.locator("#proposal-status").inner_text()).strip() == "vorgeschlagen"
            await analyst.locator("#step-accept").get_by_role("button", name="Annehmen").click()
            await analyst.wait_for_load_state()
            await analyst.locator("#step-assign input[name=assignee]").fill("Amt für Soziales")
            await analyst.locator("#step-assign").get_by_role("button", name="Zuweisen").click()
            await analyst.wait_for_load_state()
            assert (await analyst.locator("#proposal-status").inner_text()).strip() == "in Umsetzung"
            history = await analyst.locator("#proposal-history li").all_inner_texts()
            assert [h.split(" · ")[0] for h in history] == ["angelegt", "angenommen", "zugewiesen"]
            assert all("statistik" in h for h in history), "who did each step"
            await document(browsing, analyst, "council-proposal")
            await strictly_accessible(browsing, analyst, "council proposal")
            await analyst.goto(f"{stack.url}/ui/statistics/council")
            listed = await analyst.locator("#proposals").inner_text()
            assert "Sprachcafé in der Weststadt" in listed and "Amt für Soziales" in listed
            await document(browsing, analyst, "council-proposals")
            await strictly_accessible(browsing, analyst, "council proposals")

            # --- the council report and the district conference ------------------------------------------------
            await analyst.goto(f"{stack.url}/ui/statistics/report?period={today.year}&format=html")
            followup = await analyst.locator("#council-followup").inner_text()
            assert "Sprachcafé in der Weststadt" in followup and "in Umsetzung" in followup
            await analyst.goto(f"{stack.url}/ui/statistics/conference")
            summary = await analyst.locator("#conference-summary").inner_text()
            assert f"Integrationskonferenz Landkreis Landsberg am Lech {today.year}" in summary
            assert "Bedarf an Kita-Plätzen im Schuljahr" in summary and "geplant: 2" in summary
            assert "in Umsetzung" in await analyst.locator("#conference-proposals").inner_text()
            await document(browsing, analyst, "conference-summary")
            await strictly_accessible(browsing, analyst, "conference summary")
            await analyst.get_by_role("link", name="Als Dokument öffnen (zum Drucken oder Weitergeben)").click()
            await analyst.wait_for_load_state()
            assert await analyst.locator("html").get_attribute("lang") == "de"
            assert "Vorschläge an den Integrationsrat" in await analyst.locator("body").inner_text()
        finally:
            await browser.close()
    browsing.report()
