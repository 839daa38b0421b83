"""Export every architecture at its official shapes with random weights (the cost of an
architecture does not depend on its weights), for ``lavpr bench core --model-only``.

    python -m lavpr_train.zoo.bench_official OUT_DIR   # then bench each OUT_DIR/<id>
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from .importer import import_model
from .random_weights import random_state

OFFICIAL = {
    "cosplace-resnet50-2048": ("cosplace", {"backbone": "ResNet50", "dim": 2048}),
    "eigenplaces-resnet50-2048": ("eigenplaces", {"backbone": "ResNet50", "dim": 2048}),
    "cosplace-resnet18-512": ("cosplace", {"backbone": "ResNet18", "dim": 512}),
    "mixvpr-resnet50-4096": ("mixvpr", {"dim": 4096}),
    "boq-resnet50-16384": ("boq", {"backbone": "resnet50"}),
    "boq-dinov2-12288": ("boq", {"backbone": "dinov2"}),
    "salad-dinov2-8448": ("salad", {}),
    "megaloc-dinov2-8448": ("megaloc", {}),
}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    out = Path(args[0] if args else "models/zoo-random")
    only = set(args[1:])
    for model_id, (name, opts) in OFFICIAL.items():
        if (only and model_id not in only) or (out / model_id).exists():
            continue
        with tempfile.TemporaryDirectory() as d:
            ckpt = Path(d) / "random.pth"
            torch.save(random_state(name, opts), ckpt)
            import_model(name, ckpt, out / model_id, opts, parity_images=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
