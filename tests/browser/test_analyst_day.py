"""The analyst's and the council's pages in headless Chromium, in front of the real stack.

Five newcomers register and are referred to the Jobcenter under their consent (through the API). The analyst
opens the statistics: registrations per month, the newcomers on the map of Landsberg's parts, the dissimilarity
index per month and the referrals per partner, drawn as inline SVG on the server with their figures in tables,
and the newcomers per residential block (coarsened); then the council report in German. axe fails on serious
violations; the screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from contracts.calendar import today as city_today
from tests.browser.conftest import Browsing, Stack, launch_args
from tests.browser.showcase import document, strictly_accessible
from tests.browser.test_partner_day import person_referred
from tests.conftest import eventually

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "landsberg"
#: The smallest count the statistics show (below it a cell is withheld: a cross).
K = 5
NEWCOMERS = 5


def count(text: str | None) -> int | None:
    """A count as a page shows it; None where it is withheld (a cross) or not given."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


async def counts(page: Any) -> dict[str, int | None]:
    """What this test changes, as the statistics page shows it now: the newcomers of Schwaighofsiedlung (the
    district and its block Ost: the test's newcomers live at Schwaighofstraße 12) and this month's registrations.
    A row not shown counts 0; a withheld one None (somewhere from 1 to K - 1)."""
    district = page.locator("#districts-table tr", has_text="Schwaighofsiedlung")
    block = page.locator("#blocks-table tbody tr", has_text="Schwaighofsiedlung Ost")
    month = page.locator("#months-table tbody tr").last
    found: dict[str, int | None] = {}
    for name, row, cell in (("district", district, 0), ("block", block, 1), ("month", month, 0)):
        found[name] = count(await row.locator("td").nth(cell).text_content()) if await row.count() == 1 else 0
    return found


def grown(before: int | None) -> range:
    """What a count may be once the test's newcomers are in it: exactly that many more where the count before was
    shown; where it was withheld, it was from 1 to K - 1."""
    return (
        range(before + NEWCOMERS, before + NEWCOMERS + 1) if before is not None else range(1 + NEWCOMERS, K + NEWCOMERS)
    )


async def test_the_analyst_opens_the_charts_and_the_council_report_in_german(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    browsing = Browsing(stack)
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        # The population per part of the city, the reference of the dissimilarity index (an admin uploads it).
        reference = json.loads((REFERENCE / "districts.json").read_text())
        uploaded = await api.put(
            "/api/v1/monitoring/reference/districts",
            headers=await stack.bearer(api, "admin"),
            json={key: reference[key] for key in ("source", "illustrative", "districts")},
        )
        assert uploaded.status_code == 200, uploaded.text
        # The residential blocks (registration reads the same file for the streets; the monitoring gets no street).
        blocks = json.loads((REFERENCE / "blocks.json").read_text())
        fields = ("block_id", "name", "district", "population")
        uploaded = await api.put(
            "/api/v1/monitoring/reference/blocks",
            headers=await stack.bearer(api, "admin"),
            json={
                "source": blocks["source"],
                "illustrative": blocks["illustrative"],
                "blocks": [{k: b[k] for k in fields} for b in blocks["blocks"]],
            },
        )
        assert uploaded.status_code == 200, uploaded.text
        browser = await p.chromium.launch(**launch_args())
        try:
            analyst = await browser.new_page(viewport={"width": 1280, "height": 900})
            await browsing.sign_in(analyst, "statistik")
            month = city_today().strftime("%Y-%m")  # the report's month is the city's
            # The figures before the test's newcomers: the platform and its broker may hold others' (any test order).
            await analyst.goto(f"{stack.url}/ui/statistics")
            before = await counts(analyst)
            await asyncio.gather(*(person_referred(api, stack, family_name=f"Haddad {i}") for i in range(NEWCOMERS)))

            seen: list[str] = []
            after: dict[str, int | None] = {}

            async def counted() -> bool:  # monitoring reads the events on its own time
                await analyst.goto(f"{stack.url}/ui/statistics")
                seen.append(await analyst.locator("main").inner_text())
                after.update(await counts(analyst))
                return after["district"] in grown(before["district"])

            try:
                await eventually(counted, timeout_s=30, interval_s=1)
            except AssertionError:
                raise AssertionError(f"the page said: {seen[-1:]}") from None
            for chart in ("chart-registrations", "chart-districts", "chart-dissimilarity", "chart-partners"):
                svg = analyst.locator(f"svg#{chart}")
                assert await svg.count() == 1, chart
                assert await svg.get_attribute("role") == "img" and await svg.locator("title").count() == 1
            tile = analyst.locator("svg#chart-districts g[data-district='Schwaighofsiedlung']")
            assert str(after["district"]) in (await tile.text_content() or "")
            assert await analyst.locator("svg#chart-districts g[data-district]").count() == 17, "every part of the city"
            months = analyst.locator("#months-table tbody tr")
            assert await months.count() == 12
            assert after["month"] in grown(before["month"]), f"this month's: {before['month']} before, {after['month']}"
            index = (await months.last.locator("td").last.text_content() or "").strip()
            assert 0 < float(index) <= 1, f"the dissimilarity index of this month: {index}"
            # The five live at Schwaighofstraße 12: their block is shown by name, beside its district's other addresses.
            block = analyst.locator("#blocks-table tbody tr", has_text="Schwaighofsiedlung Ost")
            cells = [c.strip() for c in await block.locator("td").all_text_contents()]
            assert cells[0] == "Schwaighofsiedlung Ost" and cells[2] == "1700", cells  # the block, its residents
            assert after["block"] in grown(before["block"]), f"the block's: {before['block']} before, {after['block']}"
            rest = analyst.locator("#blocks-table tbody tr", has_text="übrige Adressen").filter(
                has_text="Schwaighofsiedlung"
            )
            assert await rest.count() == 1
            assert "Beispielhafte Baublöcke" in await analyst.locator("#blocks").inner_text()
            partners = await analyst.locator("#partners-table").text_content() or ""
            assert "Jobcenter Landsberg am Lech" in partners, "organisations by name"
            assert await analyst.locator("script").count() == 0, "no JavaScript needed"
            await document(browsing, analyst, "analyst-charts")
            await strictly_accessible(browsing, analyst, "statistics with charts")

            # --- the council report, in German, with the same charts ------------------------------------------
            await analyst.get_by_role("link", name="Bericht an den Stadtrat (HTML, druckbar als PDF)").click()
            await analyst.wait_for_load_state()
            assert (
                f"Integrations- und Demografiemonitoring, {month}"
                in await analyst.get_by_role("heading", level=1).inner_text()
            )
            report = await analyst.locator("#council-report").inner_text()
            for title in (
                "Anmeldungen nach Ortsteil und Geschlecht",
                "Vermittlungen je Partner",
                "Segregation",
                "Segregationsindex je Baublock (vergröbert)",
                "Schwaighofsiedlung: übrige Adressen",
            ):
                assert title in report, title
            assert await analyst.locator("#council-report svg.chart").count() >= 3
            assert "Haddad" not in await analyst.content()
            await document(browsing, analyst, "analyst-council-report")
            await strictly_accessible(browsing, analyst, "council report")
        finally:
            await browser.close()
    browsing.report()
