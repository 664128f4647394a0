"""The one Logger and the one Metrics of the control plane (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "aether"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Aether", service=SERVICE)

__all__ = ["MetricUnit", "flush_metrics", "logger", "metrics"]


def flush_metrics() -> None:
    """Write the metrics gathered so far as one EMF record (nothing when there are none)."""
    if metrics.metric_set:
        metrics.flush_metrics()
