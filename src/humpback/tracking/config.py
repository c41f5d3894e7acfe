"""The `mlflow` section."""

from __future__ import annotations

from humpback.core.config import Section


class MlflowConfig(Section):
    experiment: str = "humpback"
