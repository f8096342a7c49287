"""Reading a service's ``/metrics`` the way Prometheus does (its own text parser)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape: every sample by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[sample.name, frozenset(sample.labels.items())] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (which must exist: a typo fails loudly)."""
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in:\n{self.text}"
        return self.samples[key]

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of ``name`` carrying at least these labels (0 if none)."""
        wanted = set(labels.items())
        return sum(v for (n, have), v in self.samples.items() if n == name and wanted <= have)

    def label_names(self) -> set[str]:
        return {name for _, labels in self.samples for name, _ in labels}


def scrape(base_url: str, **request: Any) -> Scrape:
    response = httpx.get(base_url + "/metrics", timeout=10, **request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
