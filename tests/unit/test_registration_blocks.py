"""Registration's block lookup: an address's residential block (Baublock) from the city's reference, nothing else."""

from __future__ import annotations

import json

import pytest

from services.registration import blocks
from services.registration.app import LANDSBERG_DISTRICTS

REFERENCE = {
    "blocks": [
        {
            "block_id": "a-1",
            "district": "Altstadt",
            "streets": [{"street": "Hauptplatz"}, {"street": "Katharinenstraße", "to": 39}],
        },
        {"block_id": "k-1", "district": "Katharinenvorstadt", "streets": [{"street": "Katharinenstraße", "from": 40}]},
        {"block_id": "w-even", "district": "Weststadt", "streets": [{"street": "Iglinger Straße", "side": "even"}]},
        {
            "block_id": "w-odd",
            "district": "Weststadt",
            "streets": [{"street": "Iglinger Straße", "side": "odd", "from": 1, "to": 99}],
        },
    ]
}
INDEX = blocks.BlockIndex.of(blocks.parse(REFERENCE, LANDSBERG_DISTRICTS))


@pytest.mark.parametrize(
    ("street", "number", "district", "block"),
    [
        ("Hauptplatz", "1", "Altstadt", "a-1"),
        ("Hauptplatz", None, "Altstadt", "a-1"),  # the whole street: no number needed
        ("Katharinenstraße", "39", "Altstadt", "a-1"),
        ("Katharinenstr.", "12a", "Altstadt", "a-1"),  # spelling and a letter after the number do not matter
        ("katharinenstrasse", "40", "Katharinenvorstadt", "k-1"),
        ("Katharinenstraße", "40", "Altstadt", None),  # the number is the other district's: no block
        ("Katharinenstraße", "", "Altstadt", None),  # a range needs a number
        ("Iglinger Straße", "14", "Weststadt", "w-even"),
        ("Iglinger  Str.", "15", "Weststadt", "w-odd"),
        ("Iglinger Straße", "101", "Weststadt", None),  # beyond the odd side's range
        ("Spöttinger Straße", "3", "Weststadt", None),  # no block covers the street
        (None, None, "Weststadt", None),
    ],
)
def test_an_address_finds_its_block(street: str | None, number: str | None, district: str, block: str | None) -> None:
    assert blocks.block_of(INDEX, street, number, district) == block


def test_house_numbers() -> None:
    assert [blocks.house_number(n) for n in ("12", "12a", " 12 b", "12-14", "a", None)] == [12, 12, 12, 12, None, None]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"block_id": "x", "district": "Mars", "streets": []}, "districts"),
        ({"block_id": "Upper Case", "district": "Altstadt", "streets": []}, "block_id"),
        ({"block_id": "x", "district": "Altstadt"}, "needs"),
        ({"block_id": "x", "district": "Altstadt", "streets": [{"street": "A", "side": "left"}]}, "side"),
        ({"block_id": "x", "district": "Altstadt", "streets": [{"street": "A", "from": "1"}]}, "numbers"),
    ],
)
def test_a_malformed_reference_is_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(blocks.BlockReferenceError, match=message):
        blocks.parse({"blocks": [entry]}, LANDSBERG_DISTRICTS)


def test_a_block_id_once() -> None:
    entry = {"block_id": "x", "district": "Altstadt", "streets": []}
    with pytest.raises(blocks.BlockReferenceError, match="unique"):
        blocks.parse({"blocks": [entry, entry]}, LANDSBERG_DISTRICTS)


def test_the_shipped_landsberg_reference_loads_and_is_marked_illustrative() -> None:
    document = json.loads(blocks.LANDSBERG_BLOCKS_FILE.read_text(encoding="utf-8"))
    assert document["illustrative"] is True and "ILLUSTRATIVE" in document["note"] and document["sources"]
    index = blocks.load_file(str(blocks.LANDSBERG_BLOCKS_FILE), tuple(LANDSBERG_DISTRICTS))
    # The README's example address lies in the Altstadt's Hauptplatz block.
    assert blocks.block_of(index, "Katharinenstraße", "1", "Altstadt") == "altstadt-hauptplatz"
    # Each district's blocks hold fewer residents than the district (the rest are its other addresses).
    districts = json.loads((blocks.LANDSBERG_BLOCKS_FILE.parent / "districts.json").read_text())["districts"]
    for district in {b["district"] for b in document["blocks"]}:
        assert sum(b["population"] for b in document["blocks"] if b["district"] == district) <= districts[district]


def test_no_file_no_blocks() -> None:
    assert blocks.block_of(blocks.load_file(""), "Hauptplatz", "1", "Altstadt") is None
