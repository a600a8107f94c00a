"""docs/architecture.md stays true where a test can tell: every service and every topic is in it, every topic it
names exists, and its diagram's arrows are exactly who publishes and who consumes each topic (Architekturbild)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from contracts.registry import TOPICS

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/app.py"))
TOPIC_NAME = re.compile(r"\b[a-z]+\.[a-z_]+\.v\d+\b")


def diagram() -> str:
    blocks: list[str] = re.findall(r"```mermaid\n(.*?)```", DOC, re.S)
    assert len(blocks) == 1, "one Mermaid diagram of processes and topics"
    return blocks[0]


def topic_nodes() -> dict[str, str]:
    """The diagram's topic nodes: node id -> topic name (``id[["topic"]]``)."""
    return dict(re.findall(r"^\s*(\w+)\[\[\"([^\"]+)\"\]\]", diagram(), re.M))


def arrows() -> set[tuple[str, str]]:
    """The plain arrows ``a --> b`` of the diagram (publish and consume; labelled arrows are HTTP)."""
    return set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", diagram(), re.M))


def test_every_service_is_in_the_doc_and_the_diagram() -> None:
    assert len(SERVICES) >= 5
    # a node of its own, not the first word of a topic name
    missing = [s for s in [*SERVICES, "gateway"] if not re.search(rf"(?<![\w.]){s}(?![\w.])", diagram())]
    assert missing == []
    assert [s for s in SERVICES if f"`{s}`" not in DOC] == []


def test_every_topic_is_in_the_diagram_and_every_named_topic_exists() -> None:
    assert sorted(topic_nodes().values()) == sorted(TOPICS)
    assert set(TOPIC_NAME.findall(DOC)) - set(TOPICS) == set()


def test_the_arrows_are_who_publishes_and_who_consumes() -> None:
    node_of = {topic: node for node, topic in topic_nodes().items()}
    expected = set()
    for service in SERVICES:
        # a service publishes its own topics only (contracts name a topic after its service)
        expected |= {(service, node_of[t]) for t in TOPICS if t.split(".")[0] == service}
        handlers = importlib.import_module(f"services.{service}.handlers")
        expected |= {(node_of[t], service) for t in handlers.CONSUMED_TOPICS}
    drawn = {(a, b) for a, b in arrows() if a in node_of.values() or b in node_of.values()}
    assert sorted(drawn - expected) == [], "drawn, but not in the code"
    assert sorted(expected - drawn) == [], "in the code, but not drawn"


def test_the_rooms_named_exist() -> None:
    rooms = re.findall(r"^\| `([a-z_]+(?:\.py|/))` \|", DOC, re.M)
    assert len(rooms) >= 7
    for room in rooms:
        assert any((ROOT / "services" / s / room.rstrip("/")).exists() for s in SERVICES), room
