"""Model building blocks: backbones, aggregators, heads and the assembled VPR model."""

from .aggregators import GeM, build_aggregator
from .backbones import WeightsNotFoundError, build_backbone
from .heads import ProjectionHead
from .vpr import ModelConfig, VPRModel, model_config_from_dict

__all__ = [
    "GeM",
    "ModelConfig",
    "ProjectionHead",
    "VPRModel",
    "WeightsNotFoundError",
    "build_aggregator",
    "build_backbone",
    "model_config_from_dict",
]
