"""The fault-injection suite's platform (one for all its tests) and its table of counts.

Two profiles, by ``FAULTS_PROFILE``: ``ci`` (the default, part of `make test`: about 8 newcomers a second, a
bounded count per fault, whole suite a few minutes) and ``long`` (`make faults`: 12 a second, 600 per fault, the broker
away 20 s and a partner's receiver down a full minute). Every number can also be set on its own
(``FAULTS_RATE``, ``FAULTS_PEOPLE``, ``FAULTS_DOWN_SECONDS``, ``FAULTS_BROKER_DOWN_SECONDS``,
``FAULTS_DATABASE_DOWN_SECONDS``, ``FAULTS_WEBHOOK_OUTAGE_SECONDS``, ``FAULTS_CONVERGE_SECONDS``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.faults.harness import PLATFORM_DEVIATIONS, Platform, start_platform

PROFILES: dict[str, dict[str, float]] = {
    # CI: 2 cores for the whole suite; the faults keep their shape, the loads are shorter.
    "ci": {
        "RATE": 8,
        "PEOPLE": 60,
        "DOWN_SECONDS": 5,
        "BROKER_DOWN_SECONDS": 5,
        "DATABASE_DOWN_SECONDS": 10,
        "WEBHOOK_OUTAGE_SECONDS": 15,
        "CONVERGE_SECONDS": 60,
    },
    # The faults at their length (the broker away 20 s, a receiver down a minute), a longer load. 12 newcomers
    # a second are 48 calls: at 20 (80 calls a second) the shared 2 cores here answered too slowly for the client.
    "long": {
        "RATE": 12,
        "PEOPLE": 600,
        "DOWN_SECONDS": 5,
        "BROKER_DOWN_SECONDS": 20,
        "DATABASE_DOWN_SECONDS": 10,
        "WEBHOOK_OUTAGE_SECONDS": 60,
        "CONVERGE_SECONDS": 120,
    },
}
#: A receiver's outage is this many times the webhook back-off's first pause: the schedule doubles, so the number of
#: failed attempts each delivery makes (and the last pause before it gets through) scales with the outage. A minute
#: against the default 5 s is 12; the CI profile keeps the 12 with a shorter outage.
OUTAGE_TO_FIRST_BACKOFF = 12.0


@dataclass(frozen=True)
class Config:
    rate: float
    people: int
    down_s: float
    broker_down_s: float
    database_down_s: float
    webhook_outage_s: float
    converge_s: float
    profile: str

    @property
    def webhook_backoff_s(self) -> float:
        return self.webhook_outage_s / OUTAGE_TO_FIRST_BACKOFF


def config() -> Config:
    profile = os.environ.get("FAULTS_PROFILE", "ci")
    values = {k: float(os.environ.get(f"FAULTS_{k}", v)) for k, v in PROFILES[profile].items()}
    return Config(
        rate=values["RATE"],
        people=int(values["PEOPLE"]),
        down_s=values["DOWN_SECONDS"],
        broker_down_s=values["BROKER_DOWN_SECONDS"],
        database_down_s=values["DATABASE_DOWN_SECONDS"],
        webhook_outage_s=values["WEBHOOK_OUTAGE_SECONDS"],
        converge_s=values["CONVERGE_SECONDS"],
        profile=profile,
    )


@dataclass
class Row:
    fault: str
    counts: dict[str, Any]
    problems: list[str] = field(default_factory=list)


@dataclass
class Table:
    config: Config
    rows: list[Row] = field(default_factory=list)

    COLUMNS = (
        "registrations 201",
        "persons",
        "cases",
        "referrals",
        "webhooks delivered",
        "dead letters",
        "retries",
        "resumed after",
        "converged in",
    )

    def text(self) -> str:
        widths = [max(len("fault"), *(len(r.fault) for r in self.rows))]
        widths += [max(len(c), *(len(str(r.counts.get(c, ""))) for r in self.rows)) for c in self.COLUMNS]
        line = " | ".join(h.ljust(w) for h, w in zip(("fault", *self.COLUMNS), widths, strict=True))
        out = [
            f"profile {self.config.profile}: {self.config.rate:g} newcomers/s, {self.config.people} per fault "
            "(each: registration, two consents, a needs assessment: 4 referrals, 3 sent, 3 webhooks)",
            "| " + line + " |",
            "| " + " | ".join("-" * w for w in widths) + " |",
        ]
        for r in self.rows:
            cells = (r.fault, *(str(r.counts.get(c, "")) for c in self.COLUMNS))
            out.append("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |")
            out += [f"    !! {p}" for p in r.problems]
        out.append("differs from `make run`: " + "; ".join(f"{k}: {v}" for k, v in PLATFORM_DEVIATIONS.items()))
        return "\n".join(out)


TABLE = Table(config())


@pytest.fixture(scope="session")
def faults_config() -> Config:
    return TABLE.config


@pytest.fixture(scope="session")
def table() -> Table:
    return TABLE


# Module-scoped (the suite is one module): the processes end with it instead of idling through the rest of `make test`.
@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory, postgres_server: str | None) -> AsyncIterator[Platform]:
    if postgres_server is None:
        pytest.skip("no PostgreSQL server reachable here (set TEST_POSTGRES_URL); CI runs these")
    running = await start_platform(tmp_path_factory.mktemp("faults"), postgres_server, TABLE.config.webhook_backoff_s)
    try:
        yield running
    finally:
        await running.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TABLE.rows:
        terminalreporter.section("fault injection: counts (tests/faults)")
        terminalreporter.write_line(TABLE.text())
