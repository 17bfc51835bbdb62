"""Serializers that document the request and response bodies in the OpenAPI schema.

Requests are parsed by api/inputs.py (one parser for JSON and multipart, shared with the
ops endpoints); these classes describe the same fields for drf-spectacular, with the
filter choices taken from the registry at import so a new filter shows up by itself.
"""
from __future__ import annotations

from rest_framework import serializers

from filters import io as image_io
from filters import registry, samples
from workers.status import STATUSES as TASK_STATUSES

FILTER_CHOICES = list(registry.FILTERS)


class StepSerializer(serializers.Serializer):
    filter = serializers.ChoiceField(choices=FILTER_CHOICES, help_text="Filter name (also accepted as 'name').")
    params = serializers.DictField(required=False, help_text="Parameters; see GET /api/filters/ for each filter.")


class PipelineSerializer(serializers.Serializer):
    """The pipeline, in the original form (filters + filter_params) or as ordered steps."""

    filters = serializers.ListField(child=serializers.ChoiceField(choices=FILTER_CHOICES), required=False,
                                    help_text="Filter names in order (original system's form).")
    filter_params = serializers.DictField(child=serializers.DictField(), required=False,
                                          help_text='Parameters keyed by filter name, e.g. {"blur": {"radius": 3}}.')
    steps = StepSerializer(many=True, required=False,
                           help_text="Ordered steps; a filter may appear twice. Use instead of filters.")


class OutputOptionsSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=list(image_io.OUTPUT_FORMATS), required=False, default="png")
    quality = serializers.IntegerField(min_value=1, max_value=100, required=False, default=90)
    device = serializers.ChoiceField(choices=list(registry.DEVICES), required=False, default="auto")


class TaskSubmitSerializer(PipelineSerializer, OutputOptionsSerializer):
    """POST /api/tasks/: one image source (file upload, base64 or sample) and a pipeline."""

    image = serializers.FileField(required=False, help_text="Multipart upload (one image).")
    images = serializers.ListField(child=serializers.FileField(), required=False,
                                   help_text="Multipart upload of several images: one task each.")
    image_base64 = serializers.ListField(child=serializers.CharField(), required=False,
                                         help_text="Base64 image (a string) or several (a list); data: URLs accepted.")
    sample = serializers.ChoiceField(choices=list(samples.SAMPLE_NAMES), required=False,
                                     help_text="A generated sample image instead of an upload.")


class DistributedBatchSerializer(PipelineSerializer, OutputOptionsSerializer):
    """The original body of /api/process-batch/distributed/; the image is optional (default sample)."""

    image = serializers.CharField(required=False, help_text="Base64 image; default: the 4k sample.")
    sample = serializers.ChoiceField(choices=list(samples.SAMPLE_NAMES), required=False)


class TaskAcceptedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    status = serializers.CharField()
    queue = serializers.CharField()
    capabilities = serializers.ListField(child=serializers.CharField())
    image = serializers.DictField(help_text="What probe_image found: format, width, height, mode, frames.")
    status_url = serializers.CharField()
    result_url = serializers.CharField()
    waiting_reason = serializers.CharField(required=False, help_text="Present when no live worker can serve the queue.")


class TaskBatchAcceptedSerializer(serializers.Serializer):
    tasks = TaskAcceptedSerializer(many=True)
    count = serializers.IntegerField()


class ProgressSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    total = serializers.IntegerField()
    filter = serializers.CharField(allow_null=True)


class TaskStatusSerializer(serializers.Serializer):
    """workers.status.task_status(): the contract in docs/INTERFACES.md."""

    task_id = serializers.CharField()
    status = serializers.ChoiceField(choices=TASK_STATUSES)
    progress = ProgressSerializer(required=False, allow_null=True)
    worker = serializers.CharField(allow_null=True, required=False)
    queue = serializers.CharField(required=False)
    capabilities = serializers.ListField(child=serializers.CharField(), required=False)
    submitted_at = serializers.CharField(allow_null=True, required=False)
    started_at = serializers.CharField(allow_null=True, required=False)
    ended_at = serializers.CharField(allow_null=True, required=False)
    queue_wait_ms = serializers.FloatField(allow_null=True, required=False)
    processing_ms = serializers.FloatField(allow_null=True, required=False)
    result = serializers.DictField(allow_null=True, required=False)
    failure_type = serializers.ChoiceField(choices=["job_failure", "timeout", "worker_failure"], required=False)
    failure_reason = serializers.CharField(required=False, allow_null=True)
    explanation = serializers.CharField(required=False, allow_null=True)
    error = serializers.CharField(required=False, allow_null=True)
    waiting_reason = serializers.CharField(required=False, allow_null=True)


class TaskListSerializer(serializers.Serializer):
    tasks = TaskStatusSerializer(many=True)
    count = serializers.IntegerField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "warming", "degraded", "unhealthy"])
    reasons = serializers.ListField(child=serializers.CharField())
    redis = serializers.DictField()
    workers = serializers.DictField()
    cuda_available = serializers.BooleanField()
    gpu_device = serializers.CharField(allow_null=True)
    version = serializers.CharField()
    time = serializers.CharField()


class WorkersSerializer(serializers.Serializer):
    workers = serializers.ListField(child=serializers.DictField())
    count = serializers.IntegerField()
    by_capability = serializers.DictField(child=serializers.IntegerField())
    by_state = serializers.DictField(child=serializers.IntegerField())


class ApiProcessSerializer(serializers.Serializer):
    pid = serializers.IntegerField()
    started_at = serializers.CharField()
    uptime_s = serializers.FloatField()


class StatsSerializer(serializers.Serializer):
    uptime_s = serializers.FloatField(help_text="since the API server (gunicorn's master) started")
    started_at = serializers.CharField()
    process = ApiProcessSerializer(help_text="the API process that answered")
    requests_served = serializers.IntegerField()
    tasks_submitted = serializers.IntegerField()
    tasks_completed = serializers.IntegerField()
    tasks_failed = serializers.IntegerField()
    tasks = serializers.DictField()


class ImageInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    format = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    mode = serializers.CharField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    url = serializers.CharField()
    samples = serializers.ListField(child=serializers.CharField())


class FiltersSerializer(serializers.Serializer):
    filters = serializers.ListField(child=serializers.DictField())
    count = serializers.IntegerField()
    devices = serializers.ListField(child=serializers.CharField())
    formats = serializers.ListField(child=serializers.CharField())
    limits = serializers.DictField()
