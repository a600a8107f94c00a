"""The directory the partners service starts with (demo data): Landsberg am Lech's actors of integration work.

Read from the file the city's reference data ships in, ``reference/landsberg/partners.json``, which
``scripts/load_reference_data.py`` loads into a running platform too: one source of Landsberg's
directory. The file names its sources; it holds only facts that are certain (no phone numbers,
street addresses or web addresses made up). The ids are those the referral service routes to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reference import HERE as REFERENCE
from services.partners.schemas import MeetingOfferCreate, PartnerCreate

LANDSBERG_FILE: Path = REFERENCE / "landsberg" / "partners.json"


def read_partners(path: Path) -> list[PartnerCreate]:
    """A reference file's partners, checked as the API checks a new partner (``POST /api/v1/partners``)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return [PartnerCreate.model_validate(entry) for entry in document["partners"]]


def seed_entries(partners: list[PartnerCreate]) -> list[dict[str, Any]]:
    """The partners as the demo directory holds them: the partner's columns with ``id`` (no web address: the file
    names none it is sure of), and its services."""
    entries = []
    for partner in partners:
        entry = partner.model_dump(mode="json", exclude={"partner_id", "services", "website"})
        entry["id"] = partner.partner_id
        entry["services"] = [service.model_dump(mode="json") for service in partner.services]
        entries.append(entry)
    return entries


#: The demo directory, as ``POST /api/v1/partners`` bodies (``workflow.seed_directory`` adds them so).
LANDSBERG_DIRECTORY: list[PartnerCreate] = [
    p.model_copy(update={"website": None}) for p in read_partners(LANDSBERG_FILE)
]
LANDSBERG_PARTNERS: list[dict[str, Any]] = seed_entries(LANDSBERG_DIRECTORY)


#: Meeting offers (Begegnung) for the demo, from the same reference folder: EXAMPLES of the kinds the city names
#: (the file says so, and so does each offer's description).
MEETING_OFFERS_FILE: Path = REFERENCE / "landsberg" / "meeting_offers.json"


def read_meeting_offers(path: Path) -> list[dict[str, Any]]:
    """A reference file's meeting offers, each checked as the API checks a new one, with its organiser's id."""
    document = json.loads(path.read_text(encoding="utf-8"))
    offers = []
    for entry in document["offers"]:
        body = {k: v for k, v in entry.items() if k != "partner_id"}
        checked = MeetingOfferCreate.model_validate(body).model_dump(mode="json")
        offers.append({"partner_id": entry["partner_id"], **checked})
    return offers


LANDSBERG_MEETING_OFFERS: list[dict[str, Any]] = read_meeting_offers(MEETING_OFFERS_FILE)
