"""The OpenAPI schema generates with no warning, and the docs pages render offline."""
from __future__ import annotations

import re

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema



def test_schema_is_valid_and_generates_without_warnings():
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    messages = list(GENERATOR_STATS._warn_cache) + list(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    validate_schema(schema)                      # raises on an invalid OpenAPI document
    assert messages == []            # every view, A-core's and A-ops's, documents itself
    for path in ("/api/tasks/", "/api/tasks/{task_id}/result/", "/api/health/", "/api/filters/",
                 "/api/process-batch/distributed/", "/api/task/{task_id}/status/", "/api/image/slow/"):
        assert path in schema["paths"], path
    submit = schema["paths"]["/api/tasks/"]["post"]
    assert set(submit["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "202" in submit["responses"] and "413" in submit["responses"]
    delete_result = schema["paths"]["/api/tasks/{task_id}/result/"]["delete"]
    assert "204" in delete_result["responses"] and "404" in delete_result["responses"]


def test_schema_endpoint_and_offline_docs(api):
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/tasks/" in schema.json()["paths"]
    docs = api.get("/api/docs/")
    assert docs.status_code == 200 and docs["Content-Type"].startswith("text/html")
    html = docs.content.decode()
    assert "/api/tasks/{task_id}/result/" in html and "TaskStatus" in html
    # Nothing to fetch from elsewhere: no script, no external stylesheet.
    assert "<script" not in html and not re.search(r'(src|href)="https?://', html)


def test_browsable_api_static_files_are_served(api):
    page = api.get("/api/filters/", HTTP_ACCEPT="text/html").content.decode()
    css = re.search(r'href="(/static/rest_framework/[^"]+\.css)"', page).group(1)
    response = api.get(css)
    assert response.status_code == 200 and b"{" in b"".join(response.streaming_content)
    escape = api.get("/static/rest_framework/../../settings.py")
    assert escape.status_code in (400, 404) and escape["Content-Type"] == "application/json"


def test_api_root_points_at_real_endpoints(api):
    links = api.get("/api/").json()
    assert api.get("/").json() == links
    for key in ("docs", "health", "filters", "tasks", "workers", "stats"):
        assert api.get(links[key]).status_code == 200, key
