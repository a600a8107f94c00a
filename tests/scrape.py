"""Reading a process's ``/metrics`` (Prometheus' text format) with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    """Every sample: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def names(text: str) -> set[str]:
    """The sample names (``x_total``, ``x_bucket``, ``x_count`` ...) and the families' names."""
    found: set[str] = set()
    for family in text_string_to_metric_families(text):
        found.add(family.name)
        found.update(sample.name for sample in family.samples)
    return found


def value(series: Series, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` whose labels include ``labels``; None if there is none."""
    wanted = set(labels.items())
    matches = [v for (n, ls), v in series.items() if n == name and wanted <= ls]
    assert len(matches) <= 1, f"{name} {labels}: {len(matches)} samples"
    return matches[0] if matches else None
