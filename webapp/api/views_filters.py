"""GET /api/filters/: the registry as JSON, so clients discover filters and parameter ranges."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.serializers import FiltersSerializer
from filters import io as image_io
from filters import registry


class FiltersView(APIView):
    @extend_schema(summary="Available filters and their parameters", responses={200: FiltersSerializer})
    def get(self, request: Request) -> Response:
        described = registry.describe()
        return Response({
            "filters": described, "count": len(described), "devices": list(registry.DEVICES),
            "formats": list(image_io.OUTPUT_FORMATS),
            "limits": {"max_bytes": image_io.MAX_BYTES, "max_megapixels": image_io.MAX_MEGAPIXELS,
                       "max_steps": registry.MAX_STEPS},
        })
