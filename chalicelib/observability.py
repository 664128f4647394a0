"""The one Logger and the one Metrics of the control plane (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "aether"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Aether", service=SERVICE)

__all__ = ["MetricUnit", "logger", "metrics"]
