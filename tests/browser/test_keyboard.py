"""The main flows with the keyboard alone (issue 14), in headless Chromium in front of the real stack.

The caseworker signs in, finds a newcomer by name, records her needs, records the consent that sends the referral
and, once the partner is done, closes the case; the partner (Jobcenter) opens the referral, accepts, starts and
completes it. Only keys: Tab and Shift+Tab to move, Enter and Space to act, typing into fields (a select takes
the first letters of its option, as a keyboard user picks one). Every element reached shows its focus (the
``:focus-visible`` outline), and the skip link is the first stop of a page and moves the focus to the content.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.browser.conftest import Browsing, Stack, launch_args
from tests.conftest import eventually, newcomer

JOBCENTER = "jobcenter-landsberg"
FOCUSED = "document.activeElement"


async def focused(page: Any, check: str) -> bool:
    return bool(await page.evaluate(f"() => {{ const el = {FOCUSED}; return !!el && ({check}); }}"))


async def focus_shows(page: Any) -> None:
    """The focused element draws the focus (an outline or ring of the ``:focus-visible`` rule)."""
    style = await page.evaluate(
        f"""() => {{ const el = {FOCUSED}; const s = getComputedStyle(el);
        return {{visible: el.matches(':focus-visible'), outline: s.outlineStyle, width: s.outlineWidth,
                 shadow: s.boxShadow, tag: el.tagName, id: el.id,
                 text: (el.innerText || el.value || '').slice(0, 60)}}; }}"""
    )
    drawn = (style["outline"] != "none" and style["width"] not in ("0px", "")) or style["shadow"] != "none"
    assert style["visible"] and drawn, f"the focus is not visible on {style}"


async def tab_to(page: Any, check: str, *, limit: int = 250) -> None:
    """Press Tab until the focused element passes ``check`` (a JS condition on ``el``); its focus must show."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await focused(page, check):
            await focus_shows(page)
            return
    raise AssertionError(f"Tab never reached an element with {check}")


def named(text: str) -> str:
    """A JS condition: the element's accessible label or text is ``text``."""
    quoted = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"((el.getAttribute('aria-label') || el.innerText || el.value || '').trim() === '{quoted}')"


def by_id(element_id: str) -> str:
    return f"el.id === '{element_id}'"


async def choose(page: Any, select_id: str, value: str) -> None:
    """Tab to the select and type its option's first letters until the option is chosen."""
    await tab_to(page, by_id(select_id))
    text = await page.evaluate(
        f"() => [...document.getElementById('{select_id}').options].find(o => o.value === '{value}').text"
    )
    await page.keyboard.type(text)
    chosen = await page.evaluate(f"() => document.getElementById('{select_id}').value")
    assert chosen == value, (select_id, chosen, value)


async def skip_link_works(page: Any) -> None:
    """The first Tab of a page reaches the skip link, visibly; Enter moves the focus into the main content."""
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    await page.keyboard.press("Tab")
    assert await focused(page, "el.classList.contains('skip')"), "the skip link is the first stop"
    await focus_shows(page)
    await page.keyboard.press("Enter")
    assert await focused(page, "el.id === 'main'"), "the skip link moves the focus to the content"


async def sign_in(page: Any, stack: Stack, username: str) -> None:
    await page.goto(f"{stack.url}/ui/sign-in")
    await skip_link_works(page)
    await tab_to(page, by_id("username"))
    await page.keyboard.type(username)
    await tab_to(page, by_id("password"))
    await page.keyboard.type(stack.password(username))
    await press(page)


async def press(page: Any, key: str = "Enter") -> None:
    """Act on the focused link or button with ``key`` and wait for the page it leads to."""
    async with page.expect_navigation():
        await page.keyboard.press(key)


async def test_the_main_flows_with_the_keyboard_alone(stack: Stack) -> None:
    from playwright.async_api import async_playwright

    family = f"Tastatur-{uuid.uuid4().hex[:4]}"
    browsing = Browsing(stack)
    async with async_playwright() as p, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        body = newcomer(given_names="Samira", family_name=family, birth_date="1992-02-12")
        registered = await api.post("/api/v1/registrations", json=body, headers=await stack.bearer(api, "registrar"))
        assert registered.status_code == 201, registered.text
        person = registered.json()["person_id"]
        as_lotse = await stack.bearer(api, "lotse")

        async def reachable() -> bool:
            return (await api.get(f"/api/v1/persons/{person}", headers=as_lotse)).status_code == 200

        await eventually(reachable, timeout_s=30)
        case = (await api.get("/api/v1/cases", params={"person_id": person}, headers=as_lotse)).json()["items"][0]
        browser = await p.chromium.launch(**launch_args())
        try:
            lotse = await browser.new_page(viewport={"width": 1280, "height": 900})
            await sign_in(lotse, stack, "lotse")

            # --- find her by name --------------------------------------------------------------------------
            await skip_link_works(lotse)
            await tab_to(lotse, by_id("search-q"))
            await lotse.keyboard.type(f"Samira {family}")
            await press(lotse)
            await tab_to(lotse, named(f"Samira {family}") + " && el.tagName === 'A'")
            await press(lotse)
            assert lotse.url.endswith(f"/ui/cases/{case['case_id']}"), lotse.url

            # --- her needs ------------------------------------------------------------------------------------
            await choose(lotse, "needs-german_level", "A1")
            await choose(lotse, "needs-schooling", "secondary")
            await choose(lotse, "needs-employment_situation", "job_seeking")
            await tab_to(lotse, named("Bedarf speichern"))
            await press(lotse)
            assert await lotse.locator("#latest-needs").count() == 1
            job = lotse.locator("tr[data-service=job_placement]")

            async def proposed() -> bool:
                await lotse.reload()
                return await job.count() == 1

            await eventually(proposed, timeout_s=30, interval_s=0.5)

            # --- the consent for the Jobcenter sends the referral ------------------------------------------------
            await choose(lotse, "consent-partner", JOBCENTER)
            await choose(lotse, "consent-purpose", "job_placement")
            await tab_to(lotse, named("Erfassen"))
            await press(lotse, " ")  # Space acts on a button too

            async def sent() -> bool:
                await lotse.reload()
                return await job.get_attribute("data-status") == "sent"

            await eventually(sent, timeout_s=30, interval_s=0.5)
            referral = (await job.get_attribute("id") or "").removeprefix("referral-")

            # --- the partner: open, accept, start, complete ------------------------------------------------------
            partner = await browser.new_page(viewport={"width": 1280, "height": 900})
            await sign_in(partner, stack, "jobcenter")
            await tab_to(partner, named(f"Vermittlung öffnen: Arbeitsvermittlung {referral[:8]}"))
            await press(partner)
            await skip_link_works(partner)
            await tab_to(partner, named(f"Annehmen: Arbeitsvermittlung {referral[:8]}"))
            await press(partner, " ")
            assert await partner.locator("#referral").get_attribute("data-status") == "accepted"
            await tab_to(partner, named(f"Beginnen: Arbeitsvermittlung {referral[:8]}"))
            await press(partner)
            assert await partner.locator("#referral").get_attribute("data-status") == "in_progress"
            await choose(partner, f"outcome-{referral}", "successful")
            await tab_to(partner, named(f"Abschließen: Arbeitsvermittlung {referral[:8]}"))
            await press(partner)
            assert await partner.locator("#referral").get_attribute("data-status") == "completed"

            # --- the caseworker closes the case ------------------------------------------------------------------
            await lotse.reload()
            await choose(lotse, "close-reason", "goals_reached")
            await tab_to(lotse, named("Fall schließen"))
            await press(lotse)
            assert await lotse.locator("#case-status").get_attribute("data-status") == "closed"
            await browsing.accessible(lotse, "closed case (keyboard)")
        finally:
            await browser.close()
