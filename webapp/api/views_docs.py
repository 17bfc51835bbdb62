"""GET /api/docs/: the OpenAPI schema as a plain HTML page that renders offline.

Swagger UI and Redoc load their JavaScript from a CDN (or need the sidecar package and
collectstatic); neither is reachable here. This page is built on the server from the
same schema /api/schema/ serves, with no script at all, so it works wherever the API does.
"""
from __future__ import annotations

import json
from typing import Any

from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

METHODS = ("get", "post", "put", "patch", "delete")


def _ref_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return schema["$ref"].rpartition("/")[2]
    if schema.get("type") == "array" and "items" in schema:
        return f"list of {_ref_name(schema['items'])}"
    return schema.get("type", "")


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (path, method) with its summary, parameters, body and responses."""
    rows = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if not op:
                continue
            body = op.get("requestBody", {}).get("content", {})
            rows.append({
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": op.get("description", ""),
                "parameters": [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                                "description": p.get("description", ""),
                                "type": p.get("schema", {}).get("type", "")} for p in op.get("parameters", [])],
                "body": [{"content_type": ct, "schema": _ref_name(c.get("schema"))} for ct, c in body.items()],
                "responses": [{"status": code, "description": r.get("description", ""),
                               "schema": ", ".join(f"{ct}: {_ref_name(c.get('schema')) or 'binary'}"
                                                   for ct, c in r.get("content", {}).items())}
                              for code, r in op.get("responses", {}).items()],
            })
    return rows


def components(schema: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": name, "json": json.dumps(body, indent=2)}
            for name, body in sorted(schema.get("components", {}).get("schemas", {}).items())]


class DocsView(APIView):
    """HTML reference of every endpoint, generated from the OpenAPI schema."""

    @extend_schema(exclude=True)
    def get(self, request):
        schema = SchemaGenerator().get_schema(request=None, public=True)
        return render(request, "api/docs.html", {
            "info": schema.get("info", {}), "operations": operations(schema), "components": components(schema)})

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)


class ApiRootView(APIView):
    """GET /api/ (and /): where things are, for a person or a script that just arrived."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response({
            "name": "Pixelfleet API", "docs": "/api/docs/", "schema": "/api/schema/",
            "dashboard": "/dashboard/", "queues": "/api/queues/",
            "health": "/api/health/", "filters": "/api/filters/", "submit": "/api/tasks/",
            "tasks": "/api/tasks/", "workers": "/api/workers/status/", "stats": "/api/stats/",
            "metrics": "/api/metrics/", "sample_image": "/api/image/4k/",
        })
