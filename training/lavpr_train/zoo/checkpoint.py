"""Read a published checkpoint (torch pickle, Lightning checkpoint or safetensors) into a flat
state_dict and load it strictly, with errors that say what is wrong and how to fix it."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn


class CheckpointError(ValueError):
    """The checkpoint file cannot be read or does not fit the requested architecture."""


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    head = path.read_bytes()[:9] if path.stat().st_size < 9 else path.open("rb").read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors by name; unwraps Lightning's ``state_dict`` and DataParallel's ``module.``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (interrupted download?)")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            raw = load_file(str(path))
        else:
            try:
                raw = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:
                # Lightning checkpoints pickle hyper-parameters (plain objects) next to the weights
                raw = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"{path}: cannot read as a PyTorch or safetensors checkpoint; the file is truncated "
            f"or not a checkpoint (re-download it): {str(exc).splitlines()[0]}"
        ) from exc
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(
            f"{path}: cannot read checkpoint (truncated or corrupt?): {exc}"
        ) from exc
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{path}: holds no state_dict of tensors (got {type(raw).__name__})")
    if raw and all(k.startswith("module.") for k in raw):
        raw = {k[len("module.") :]: v for k, v in raw.items()}
    return raw


def _few(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n} more)" if len(keys) > n else "")


def _groups(keys: list[str]) -> str:
    """Keys summarised by their first two name parts, e.g. ``aggregator.linear.* (2)``."""
    counts: dict[str, int] = {}
    for k in keys:
        head = ".".join(k.split(".")[:2])
        counts[head] = counts.get(head, 0) + 1
    return ", ".join(f"{h}.* ({n})" if n > 1 or h not in keys else h for h, n in counts.items())


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], what: str, hint: str) -> None:
    """Load ``state`` into ``model``: every key present, none extra, every shape equal."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: checkpoint keys do not match this architecture (another arch, backbone or "
            f"size?). missing {len(missing)}: {_groups(missing) or '-'} (e.g. {_few(missing, 3)}); "
            f"unexpected {len(unexpected)}: {_groups(unexpected) or '-'} "
            f"(e.g. {_few(unexpected, 3)}). {hint}"
        )
    wrong = [
        f"{k} checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in own
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if wrong:
        raise CheckpointError(
            f"{what}: options do not match the checkpoint's tensor shapes: {_few(wrong, 4)}. {hint}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
