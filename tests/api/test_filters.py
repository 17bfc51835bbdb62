"""GET /api/filters/ is the registry, unchanged, with the limits a client must respect."""
from __future__ import annotations

from filters import registry


def test_filters_lists_the_registry(api):
    body = api.get("/api/filters/").json()
    assert [f["name"] for f in body["filters"]] == list(registry.FILTERS)
    assert body["filters"] == registry.describe()
    assert body["count"] == len(registry.FILTERS)
    assert body["devices"] == ["auto", "cpu", "gpu"] and "png" in body["formats"]
    assert body["limits"]["max_steps"] == 32 and body["limits"]["max_bytes"] > 0
    blur = next(f for f in body["filters"] if f["name"] == "blur")
    radius = next(p for p in blur["params"] if p["name"] == "radius")
    assert radius["type"] == "float" and radius["min"] == 0.1 and radius["max"] == 50


def test_filters_without_slash_and_browsable_html(api):
    assert api.get("/api/filters").status_code == 200
    html = api.get("/api/filters/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200 and b"blur" in html.content
