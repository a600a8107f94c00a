"""Residential blocks (Baublöcke): which block of the city's reference an address lies in. Pure, no I/O but
:func:`load_file`.

Registration alone sees addresses; it publishes only the coarse block id (never street or number), so that the
monitoring can measure segregation below the district (issue 18). An address that no block covers, or whose
district is not the block's, has no block: it counts with its district's other addresses.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reference import HERE as REFERENCE

#: The shipped Landsberg reference (the default of ``REGISTRATION_BLOCKS_FILE``; package data, so in the image too).
LANDSBERG_BLOCKS_FILE = REFERENCE / "landsberg" / "blocks.json"


class BlockReferenceError(ValueError):
    """The block reference file is malformed (the message names the entry)."""


@dataclass(frozen=True)
class StreetRange:
    """Part of a street: every house number unless ``first``/``last`` (inclusive) or ``side`` narrow it."""

    street: str
    first: int | None = None
    last: int | None = None
    side: str | None = None  # "odd", "even" or None (both sides)

    def covers(self, number: int | None) -> bool:
        if self.first is None and self.last is None and self.side is None:
            return True
        if number is None:  # a range needs a number to be in it
            return False
        if self.first is not None and number < self.first:
            return False
        if self.last is not None and number > self.last:
            return False
        return self.side is None or (number % 2 == 1) == (self.side == "odd")


@dataclass(frozen=True)
class Block:
    block_id: str
    district: str
    streets: tuple[StreetRange, ...]


@dataclass(frozen=True)
class BlockIndex:
    """The blocks by normalised street name, for the lookup."""

    by_street: Mapping[str, tuple[tuple[Block, StreetRange], ...]]

    @staticmethod
    def of(blocks: Sequence[Block]) -> BlockIndex:
        found: dict[str, list[tuple[Block, StreetRange]]] = {}
        for block in blocks:
            for part in block.streets:
                found.setdefault(normalise_street(part.street), []).append((block, part))
        return BlockIndex({street: tuple(parts) for street, parts in found.items()})


def normalise_street(street: str) -> str:
    """One spelling per street: case, spacing, hyphens and "Str."/"Strasse" for "Straße" do not matter."""
    text = unicodedata.normalize("NFC", street).casefold().strip()
    text = re.sub(r"[\s\-]+", " ", text)
    text = re.sub(r"(str\.|strasse|straße)(?=\s|$)", "strasse", text)
    return text.replace("ß", "ss")


def house_number(text: str | None) -> int | None:
    """The number of a house number ("12a", "12 b", "12-14" count as 12); None when it starts with none."""
    found = re.match(r"\s*(\d+)", text or "")
    return int(found.group(1)) if found else None


def block_of(index: BlockIndex, street: str | None, number: str | None, district: str | None) -> str | None:
    """The id of the block that covers the address, or None (no street, no block there, another district).

    Two blocks covering the same address is an error of the reference; the first in the file wins.
    """
    if not street or not district:
        return None
    value = house_number(number)
    for block, part in index.by_street.get(normalise_street(street), ()):
        if block.district == district and part.covers(value):
            return block.block_id
    return None


def parse(document: Mapping[str, Any], districts: Sequence[str] | None = None) -> list[Block]:
    """The blocks of a reference document (``reference/<city>/blocks.json``), checked."""
    entries = document.get("blocks")
    if not isinstance(entries, list):
        raise BlockReferenceError("the block reference has no list 'blocks'")
    blocks: list[Block] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        where = f"block {n + 1}"
        try:
            block_id, district = str(entry["block_id"]), str(entry["district"])
            streets = tuple(
                StreetRange(str(s["street"]), s.get("from"), s.get("to"), s.get("side")) for s in entry["streets"]
            )
        except (KeyError, TypeError) as exc:
            raise BlockReferenceError(f"{where}: needs block_id, district and streets ({exc})") from exc
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", block_id) or block_id in seen:
            raise BlockReferenceError(f"{where}: block_id {block_id!r} must be unique, lower case, digits, hyphens")
        if districts is not None and district not in districts:
            raise BlockReferenceError(f"{where}: {district!r} is not one of the city's districts")
        for s in streets:
            numbers = (s.first, s.last)
            if s.side not in (None, "odd", "even") or not all(v is None or isinstance(v, int) for v in numbers):
                raise BlockReferenceError(f"{where}: 'from'/'to' are numbers, 'side' is 'odd' or 'even'")
        seen.add(block_id)
        blocks.append(Block(block_id, district, streets))
    return blocks


@lru_cache(maxsize=4)
def load_file(path: str, districts: tuple[str, ...] | None = None) -> BlockIndex:
    """The block index of a reference file, read once per process (an empty path: no blocks)."""
    if not path:
        return BlockIndex({})
    return BlockIndex.of(parse(json.loads(Path(path).read_text(encoding="utf-8")), districts))
