"""Scraping a real ``/metrics`` over HTTP and reading it with prometheus_client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def scrape(url: str, **kwargs: object) -> dict[str, list[Sample]]:
    """Metric family name → its samples (a family's name drops ``_total``/``_info``)."""
    response = httpx.get(url, timeout=5, **kwargs)  # type: ignore[arg-type]
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    families = list(text_string_to_metric_families(response.text))
    names = [family.name for family in families]
    assert len(names) == len(set(names)), f"a metric family twice (Prometheus refuses the scrape): {names}"
    return {family.name: list(family.samples) for family in families}


def value(families: dict[str, list[Sample]], sample_name: str, **labels: str) -> float:
    """The value of the one sample called ``sample_name`` whose labels include ``labels``."""
    found = [s.value for samples in families.values() for s in samples
             if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{sample_name}{labels}: {len(found)} samples"
    return found[0]
