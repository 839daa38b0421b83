"""Export the pose branch and the text head (two ONNX files, one manifest, kind ``pose_text``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..export.manifest import sha256_file, staging_dir, write_manifest
from .model import PoseTextModel


def export_pose_text_model(
    model: PoseTextModel,
    out_root: str | Path,
    features: dict,
    text_model: str = "minilm-l6-v2",
    model_id: str = "posetext-minilm-synthetic",
    tolerance: float = 1e-4,
    force: bool = False,
    extra: dict | None = None,
) -> tuple[Path, dict[str, float]]:
    """Returns (folder, {'pose': err, 'text': err}); RuntimeError when either > ``tolerance``."""
    import onnxruntime as ort

    model = model.eval()
    cfg = model.cfg
    g = torch.Generator().manual_seed(0)
    poses = torch.randn(16, cfg.steps, cfg.features, generator=g)
    text = torch.nn.functional.normalize(torch.randn(16, cfg.text_dim, generator=g), dim=-1)
    errs: dict[str, float] = {}
    with staging_dir(out_root, model_id, force=force) as tmp:
        for name, module, inp, x in (
            ("pose", model.pose, "poses", poses),
            ("text", model.text, "text", text),
        ):
            path = tmp / f"{name}.onnx"
            torch.onnx.export(
                module,
                (x[:2],),
                str(path),
                input_names=[inp],
                output_names=["embeddings"],
                opset_version=17,
                dynamo=False,
                dynamic_axes={inp: {0: "batch"}, "embeddings": {0: "batch"}},
            )
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = sess.run(None, {inp: x.numpy()})[0]
            with torch.no_grad():
                want = module(x).numpy()
            errs[name] = float(np.abs(got - want).max())
            if errs[name] > tolerance:
                raise RuntimeError(
                    f"{name} branch ONNX/torch parity {errs[name]:.2e} > tolerance {tolerance:.0e}"
                )
        write_manifest(
            tmp,
            {
                "model_id": model_id,
                "kind": "pose_text",
                "file": "pose.onnx",
                "output_dim": cfg.dim,
                "input_name": "poses",
                "output_name": "embeddings",
                "normalize": True,
                "description": "pose-window encoder (conv + BiGRU) and text projection head over "
                f"frozen {text_model} embeddings; contrastive (InfoNCE)",
                "source": "lavpr-train posetext-train / posetext-export",
                "extra": {
                    "text_head": "text.onnx",
                    "text_head_sha256": sha256_file(tmp / "text.onnx"),
                    "text_model": text_model,
                    "text_dim": cfg.text_dim,
                    **{k: v for k, v in features.items()},
                    "parity_max_abs_error": errs,
                    **(extra or {}),
                },
            },
        )
    return Path(out_root) / model_id, errs
