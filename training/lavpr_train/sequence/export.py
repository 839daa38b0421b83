"""Export a SeqNet checkpoint to ONNX + manifest (kind ``sequence``), with a torch parity check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..export.manifest import staging_dir, write_manifest
from .model import SeqNet

FRAME_MODEL = "patchnorm-64x32-p8"


def export_sequence_model(
    model: SeqNet,
    out_root: str | Path,
    model_id: str = "seqnet-patchnorm-nordland",
    frame_model: str = FRAME_MODEL,
    tolerance: float = 1e-4,
    force: bool = False,
    extra: dict | None = None,
    parity_input: np.ndarray | None = None,
) -> tuple[Path, float]:
    """Returns (model folder, max abs parity error); raises RuntimeError above ``tolerance``."""
    import onnxruntime as ort

    model = model.eval()
    cfg = model.cfg
    x = (
        torch.from_numpy(np.ascontiguousarray(parity_input, dtype=np.float32))
        if parity_input is not None
        else torch.nn.functional.normalize(torch.randn(8, cfg.seq_len, cfg.frame_dim), dim=-1)
    )
    with staging_dir(out_root, model_id, force=force) as tmp:
        path = tmp / "model.onnx"
        torch.onnx.export(
            model,
            (x[:2],),
            str(path),
            input_names=["sequences"],
            output_names=["descriptors"],
            opset_version=17,
            dynamic_axes={"sequences": {0: "batch"}, "descriptors": {0: "batch"}},
            dynamo=False,
        )
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"sequences": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        err = float(np.abs(got - want).max())
        if err > tolerance:
            raise RuntimeError(f"ONNX/torch parity {err:.2e} > tolerance {tolerance:.0e}")
        write_manifest(
            tmp,
            {
                "model_id": model_id,
                "kind": "sequence",
                "file": "model.onnx",
                "output_dim": cfg.output_dim,
                "input_name": "sequences",
                "output_name": "descriptors",
                "normalize": True,
                "description": f"SeqNet ({cfg.mode}) over {cfg.seq_len} {frame_model} descriptors",
                "source": "lavpr-train seq-train / seq-export",
                "extra": {
                    "sequence_length": cfg.seq_len,
                    "frame_dim": cfg.frame_dim,
                    "frame_model": frame_model,
                    "mode": cfg.mode,
                    "kernel": cfg.kernel,
                    "parity_max_abs_error": err,
                    **(extra or {}),
                },
            },
        )
    return Path(out_root) / model_id, err
