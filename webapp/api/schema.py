"""drf-spectacular hooks: one schema entry per endpoint.

Every original path is routed with and without its trailing slash (api/urls.py); both
spellings in the schema would be duplicate operations, so the slash-less alias is left
out when the slashed path exists (the docs say both are accepted).
"""
from __future__ import annotations


def drop_slashless_aliases(endpoints: list, **kwargs) -> list:
    paths = {path for path, *_ in endpoints}
    return [entry for entry in endpoints if entry[0].endswith("/") or entry[0] + "/" not in paths]


def tighten_to_validation(result: dict, generator=None, request=None, public=None) -> dict:
    """Postprocessing hook: request bodies and parameters as strict as the validation.

    See api.schema_bodies for why and for what cannot be said in a schema (413/422).
    """
    from api import schema_bodies as bodies
    from api.views_batch import MAX_BATCH_MEGAPIXELS, MAX_IMAGE_COUNT, MAX_ITERATIONS
    from api.views_images import MAX_DELAY_S
    from api.views_pixelart import max_wait_s

    from workers.settings import COMPLETIONS_WINDOW, MAX_WAIT

    limits = {("/api/tasks/", "limit"): {"minimum": 1, "maximum": 1000},
              ("/api/image/slow/", "delay"): {"minimum": 0, "maximum": MAX_DELAY_S},
              ("/api/metrics/history/", "window"): {"minimum": 60, "maximum": COMPLETIONS_WINDOW},
              ("/api/metrics/history/", "bucket"): {"minimum": 5, "maximum": 300}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for param in operation.get("parameters", []):
                schema = param.setdefault("schema", {})
                if param.get("in") == "path" and param.get("name") == "task_id":
                    schema.update(pattern=bodies.TASK_ID_PATTERN, maxLength=128)
                elif param.get("in") == "query" and (path, param.get("name")) in limits:
                    schema.update(limits[(path, param["name"])])
                elif param.get("in") == "query" and param.get("name") == "wait":    # api.views_wait
                    schema.update(minimum=0, maximum=MAX_WAIT)
            content = _request_body(path, method, bodies, MAX_IMAGE_COUNT, MAX_ITERATIONS,
                                    MAX_BATCH_MEGAPIXELS, max_wait_s())
            if content is not None:
                operation["requestBody"] = {"required": True, "content": {
                    media: {"schema": schema} for media, schema in content.items()}}
    return result


def _request_body(path: str, method: str, bodies, max_count: int, max_iterations: int,
                  max_megapixels: float, max_wait: float) -> dict | None:
    if method != "post":
        return None
    if path == "/api/tasks/":
        return {"application/json": bodies.task_json(), "multipart/form-data": bodies.task_multipart()}
    if path == "/api/process-batch/distributed/":
        return {"application/json": bodies.distributed_json()}
    if path.startswith("/api/process-batch/"):
        mode = path.rstrip("/").rsplit("/", 1)[-1]
        return {"application/json": bodies.batch_json(mode, max_count, max_iterations, max_megapixels)}
    if path.rstrip("/") == "/api/process":
        return {"application/json": bodies.pixel_art_json(max_wait)}
    return None
