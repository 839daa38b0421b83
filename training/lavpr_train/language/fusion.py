"""Image + text fusion (LaVPR): dynamic weighting, a learned fixed weight, or concatenation.

Inputs per place: the descriptor of a frozen image model and the embedding of its description by
a frozen text model (both exported ONNX models; features computed once with onnxruntime, as the
runtime does). Trained on query sets (clean and degraded copies of the same queries share their
descriptions, keyed by image name) against a described reference set, with multi-positive
InfoNCE over the fused query-vs-reference scores. Export: ``kind: fusion`` ONNX with inputs
``image``/``text`` and output ``weights`` (dynamic, fixed) or ``fused`` (concat).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..export.image import OPSET, ParityError
from ..export.manifest import staging_dir, write_manifest
from .common import image_features, info_nce, model_id_of, read_descriptions, text_features

MODES = ("dynamic", "fixed", "concat")


class FusionNet(nn.Module):
    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        mode: str = "dynamic",
        hidden: int = 128,
        out_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.image_dim, self.text_dim = mode, image_dim, text_dim
        if mode == "fixed":
            self.logits = nn.Parameter(torch.zeros(2))
        else:
            last = 2 if mode == "dynamic" else out_dim
            self.mlp = nn.Sequential(
                nn.Linear(image_dim + text_dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, last),
            )
            if mode == "dynamic":  # start at (0.5, 0.5)
                nn.init.zeros_(self.mlp[-1].weight)
                nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        if self.mode == "fixed":
            w = torch.softmax(self.logits, 0).unsqueeze(0).expand(image.shape[0], 2)
            # Both inputs stay in the exported graph (the runtime feeds both).
            return w + 0.0 * (image[:, :1] + text[:, :1])
        out = self.mlp(torch.cat([image, text], dim=1))
        return torch.softmax(out, dim=1) if self.mode == "dynamic" else out

    def scores(self, qi, qt, ci, ct, has_text) -> torch.Tensor:
        """(Q, N) fused scores (the runtime's formula, core/fusion.py)."""
        if self.mode == "concat":
            fq = F.normalize(self(qi, qt), dim=1)
            fc = F.normalize(self(ci, ct * has_text[:, None]), dim=1)
            return fq @ fc.T
        w = self(qi, qt)
        fused = w[:, :1] * (qi @ ci.T) + w[:, 1:] * (qt @ ct.T)
        return torch.where(has_text[None, :], fused, qi @ ci.T)


def _gt(path: Path, n: int) -> list[set[int]]:
    rows = json.loads(Path(path).read_text())
    pos: list[set[int]] = [set() for _ in range(n)]
    for r in rows:
        if int(r["query"]) < n:
            pos[int(r["query"])] = {int(j) for j in r["positives"]}
    return pos


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".png"))


@dataclass
class FusionConfig:
    out: str
    image_model: str
    text_model: str
    ref_dir: str
    ref_descriptions: str
    query_dirs: list[str]
    query_descriptions: str
    ground_truth: str
    mode: str = "dynamic"
    model_id: str | None = None
    train_queries: tuple[int, int] = (0, 55)
    hidden: int = 128
    out_dim: int = 256
    epochs: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-3
    temperature: float = 0.05
    seed: int = 0
    tolerance: float = 1e-5
    force: bool = False


def _features(cfg: FusionConfig):
    refs = _images(Path(cfg.ref_dir))
    rtab = read_descriptions(cfg.ref_descriptions)
    qtab = read_descriptions(cfg.query_descriptions)
    r_txt = [rtab.get(p.name, "") for p in refs]
    r_has = np.array([bool(t) for t in r_txt])
    r_t = np.zeros((len(refs), 0), np.float32)
    tf = text_features(cfg.text_model, [t for t in r_txt if t] or ["x"])
    r_t = np.zeros((len(refs), tf.shape[1]), np.float32)
    r_t[r_has] = tf[: int(r_has.sum())]
    ref = (image_features(cfg.image_model, refs), r_t, r_has)
    sets = []
    for d in cfg.query_dirs:
        qs = _images(Path(d))
        txt = [qtab.get(p.name) for p in qs]
        keep = [i for i, t in enumerate(txt) if t]
        sets.append(
            {
                "dir": str(d),
                "index": np.asarray(keep),
                "image": image_features(cfg.image_model, [qs[i] for i in keep]),
                "text": text_features(cfg.text_model, [txt[i] for i in keep]),
                "positives": [_gt(Path(cfg.ground_truth), len(qs))[i] for i in keep],
            }
        )
    return ref, sets


def _r1(sim: np.ndarray, positives) -> float:
    top = sim.argmax(1)
    ok = [int(t) in p for t, p in zip(top, positives, strict=True) if p]
    return float(np.mean(ok)) if ok else float("nan")


def train_fusion(cfg: FusionConfig) -> dict:
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    (ri, rt, rh), sets = _features(cfg)
    net = FusionNet(ri.shape[1], rt.shape[1], cfg.mode, cfg.hidden, cfg.out_dim)
    a, b = cfg.train_queries
    tr = [(s, (s["index"] >= a) & (s["index"] < b)) for s in sets]
    qi = torch.from_numpy(np.concatenate([s["image"][m] for s, m in tr]))
    qt = torch.from_numpy(np.concatenate([s["text"][m] for s, m in tr]))
    pos_l = [p for s, m in tr for p, k in zip(s["positives"], m, strict=True) if k]
    if not pos_l:
        raise ValueError(f"no described training queries in {cfg.train_queries}")
    pos = torch.zeros(len(pos_l), len(ri), dtype=torch.bool)
    for i, p in enumerate(pos_l):
        pos[i, list(p)] = True
    ci, ct, ch = torch.from_numpy(ri), torch.from_numpy(rt), torch.from_numpy(rh)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _epoch in range(cfg.epochs):
        net.train()
        loss = info_nce(net.scores(qi, qt, ci, ct, ch), pos, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    report = []
    with torch.no_grad():
        for s in sets:
            held = (s["index"] < a) | (s["index"] >= b)
            sim_f = net.scores(
                torch.from_numpy(s["image"]), torch.from_numpy(s["text"]), ci, ct, ch
            ).numpy()
            w = net(torch.from_numpy(s["image"]), torch.from_numpy(s["text"])).numpy()
            sim_i, sim_t = s["image"] @ ri.T, s["text"] @ rt.T
            pos_h = [p for p, k in zip(s["positives"], held, strict=True) if k]
            row = {
                "queries": s["dir"],
                "held_out": int(held.sum()),
                "image_r1": _r1(sim_i[held], pos_h),
                "text_r1": _r1(sim_t[held], pos_h),
                "fusion_r1": _r1(sim_f[held], pos_h),
            }
            if cfg.mode != "concat":
                row["mean_w_image"] = float(w[held, 0].mean())
            report.append(row)
            print(json.dumps(row))
    image_model_id, text_model_id = model_id_of(cfg.image_model), model_id_of(cfg.text_model)
    mid = cfg.model_id or f"fusion-{cfg.mode}-{image_model_id}-{text_model_id}"
    err = export_fusion(
        net,
        cfg.out,
        mid,
        image_model_id,
        text_model_id,
        ri,
        rt,
        cfg.tolerance,
        cfg.force,
        {
            "train_queries": list(cfg.train_queries),
            "query_dirs": cfg.query_dirs,
            "epochs": cfg.epochs,
            "held_out": report,
        },
    )
    summary = {
        "model_id": mid,
        "parity_max_abs_error": err,
        "held_out": report,
        "seconds": time.perf_counter() - t0,
    }
    (Path(cfg.out) / mid / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def export_fusion(
    net: FusionNet,
    out: str | Path,
    model_id: str,
    image_model_id: str,
    text_model_id: str,
    sample_image: np.ndarray | None = None,
    sample_text: np.ndarray | None = None,
    tolerance: float = 1e-5,
    force: bool = False,
    training: dict | None = None,
) -> float:
    """ONNX export + parity (torch vs onnxruntime) + manifest; returns the max abs error."""
    import onnx
    import onnxruntime as ort

    net = net.eval()
    out_name = "fused" if net.mode == "concat" else "weights"
    rng = np.random.default_rng(0)
    xi = rng.normal(size=(6, net.image_dim)).astype(np.float32)
    xt = rng.normal(size=(6, net.text_dim)).astype(np.float32)
    if sample_image is not None and sample_text is not None:
        xi = np.concatenate([xi, sample_image[:8]]).astype(np.float32)
        xt = np.concatenate([xt, sample_text[:8]]).astype(np.float32)
    xi /= np.linalg.norm(xi, axis=1, keepdims=True)
    norms = np.linalg.norm(xt, axis=1, keepdims=True)
    xt = np.where(norms > 0, xt / np.maximum(norms, 1e-12), 0).astype(np.float32)
    with staging_dir(out, model_id, force=force) as tmp:
        path = tmp / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (torch.from_numpy(xi[:2]), torch.from_numpy(xt[:2])),
                str(path),
                input_names=["image", "text"],
                output_names=[out_name],
                dynamic_axes={"image": {0: "batch"}, "text": {0: "batch"}, out_name: {0: "batch"}},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        onnx.checker.check_model(str(path), full_check=True)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run([out_name], {"image": xi, "text": xt})[0]
        with torch.no_grad():
            ref = net(torch.from_numpy(xi), torch.from_numpy(xt)).numpy()
        err = float(np.abs(got - ref).max())
        if not err <= tolerance:
            raise ParityError(f"{model_id}: onnxruntime vs torch max abs error {err:.3g}")
        write_manifest(
            tmp,
            {
                "model_id": model_id,
                "kind": "fusion",
                "file": "model.onnx",
                "output_dim": 2 if net.mode != "concat" else int(ref.shape[1]),
                "input_name": "image",
                "output_name": out_name,
                "normalize": net.mode == "concat",
                "description": (
                    f"LaVPR-style {net.mode} fusion of '{image_model_id}' image descriptors "
                    f"({net.image_dim}-d) and '{text_model_id}' text embeddings ({net.text_dim}-d)"
                ),
                "source": f"lavpr_train lang-fusion (torch {torch.__version__}, opset {OPSET}); "
                f"parity max_abs_error {err:.3g}",
                "extra": {
                    "mode": net.mode,
                    "image_model_id": image_model_id,
                    "text_model_id": text_model_id,
                    "image_dim": net.image_dim,
                    "text_dim": net.text_dim,
                    "score": (
                        "cos(fused_q, fused_c)"
                        if net.mode == "concat"
                        else "w_image * cos(image) + w_text * cos(text); image only where the "
                        "candidate has no description"
                    ),
                    "parity_max_abs_error": err,
                    "training": training or {},
                },
            },
        )
    print(f"exported {model_id} -> {Path(out) / model_id} (parity {err:.3g})")
    return err
