"""drf-spectacular hooks: one schema entry per endpoint.

Every original path is routed with and without its trailing slash (api/urls.py); both
spellings in the schema would be duplicate operations, so the slash-less alias is left
out when the slashed path exists (the docs say both are accepted).
"""
from __future__ import annotations


def drop_slashless_aliases(endpoints: list, **kwargs) -> list:
    paths = {path for path, *_ in endpoints}
    return [entry for entry in endpoints if entry[0].endswith("/") or entry[0] + "/" not in paths]
