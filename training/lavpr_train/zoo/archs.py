"""The published architectures: how to build each from its options, its official input size
and resize rule, and where its authors publish the weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .boq import BoQ
from .gem_fc import BACKBONES as GEM_BACKBONES
from .gem_fc import GeoLocalizationNet
from .mixvpr import MixVPR
from .optimal_transport import MegaLoc, Salad


@dataclass(frozen=True)
class Arch:
    name: str
    defaults: dict[str, Any]
    build: Callable[[dict[str, Any]], nn.Module]
    input_size: Callable[[dict[str, Any]], tuple[int, int]]
    interpolation: Callable[[dict[str, Any]], str]
    url: Callable[[dict[str, Any]], str]
    describe: Callable[[dict[str, Any]], str]
    published: str  # Recall@1 as the authors report it, with the source


def _vit(o: dict[str, Any]) -> dict[str, Any]:
    """Small-variant overrides of the DINOv2 trunk (tests); None = the official ViT-B/14."""
    return {"depth": o.get("vit_depth"), "embed_dim": o.get("vit_dim")}


def _gem_fc(project: str, published: str) -> Arch:
    def build(o):
        if o["backbone"] not in GEM_BACKBONES:
            raise ValueError(
                f"{project} backbone must be one of {', '.join(GEM_BACKBONES)}, not "
                f"{o['backbone']!r}"
            )
        return GeoLocalizationNet(o["backbone"], int(o["dim"]))

    return Arch(
        project,
        {"backbone": "ResNet50", "dim": 2048},
        build,
        lambda o: (512, 512),
        lambda o: "bilinear",
        lambda o: (
            f"https://github.com/gmberton/{'CosPlace' if project == 'cosplace' else 'EigenPlaces'}"
            f"/releases/download/v1.0/{o['backbone']}_{o['dim']}_{project}.pth"
        ),
        lambda o: f"{project} {o['backbone']} + GeM + FC, {o['dim']}-d",
        published,
    )


def _boq_size(o):
    return (384, 384) if o["backbone"] == "resnet50" else (322, 322)


ARCHS: dict[str, Arch] = {
    "cosplace": _gem_fc(
        "cosplace", "see Berton et al., CVPR 2022 (arXiv 2204.02287), Tables per backbone/dim"
    ),
    "eigenplaces": _gem_fc(
        "eigenplaces", "see Berton et al., ICCV 2023 (arXiv 2308.10832), Tables per backbone/dim"
    ),
    "mixvpr": Arch(
        "mixvpr",
        {"dim": 4096, "input_size": (320, 320)},  # the mixer's token count follows the input
        lambda o: MixVPR(tuple(o["input_size"]), out_channels=int(o["dim"]) // 4, out_rows=4),
        lambda o: tuple(o["input_size"]),
        lambda o: "bilinear",
        lambda o: (
            "https://drive.google.com/file/d/1vuz3PvnR7vxnDDLQrdHJaOA04SQrtk5L "
            "(resnet50_MixVPR_4096_channels(1024)_rows(4).ckpt, link in the MixVPR README)"
        ),
        lambda o: f"MixVPR ResNet50 (to layer3) + 4 feature mixers, {o['dim']}-d",
        "Pitts250k-test 94.3, Pitts30k-test 91.6, MSLS-val 88.2 (MixVPR README)",
    ),
    "boq": Arch(
        "boq",
        {"backbone": "resnet50", "dim": None},
        lambda o: BoQ(o["backbone"], o["dim"] and int(o["dim"]), **_vit(o)),
        _boq_size,
        lambda o: "bicubic",
        lambda o: (
            "https://github.com/amaralibey/Bag-of-Queries/releases/download/v1.0/"
            + ("resnet50_16384.pth" if o["backbone"] == "resnet50" else "dinov2_12288.pth")
        ),
        lambda o: f"Bag-of-Queries, {o['backbone']} backbone",
        "ResNet50: MSLS-val 91.2, Pitts30k-test 92.4; DINOv2: MSLS-val 93.8, Pitts30k-test "
        "93.7 (BoQ README)",
    ),
    "salad": Arch(
        "salad",
        {},
        lambda o: Salad(**_vit(o)),
        lambda o: (322, 322),
        lambda o: "bilinear",
        lambda o: "https://github.com/serizba/salad/releases/download/v1.0.0/dino_salad.ckpt",
        lambda o: "SALAD: DINOv2 ViT-B/14 + Sinkhorn aggregation, 8448-d",
        "MSLS-val 92.2, MSLS-challenge 75.0, Nordland 76.0 (SALAD README)",
    ),
    "megaloc": Arch(
        "megaloc",
        {"dim": 8448},
        lambda o: MegaLoc(int(o["dim"]), **_vit(o)),
        lambda o: (322, 322),
        lambda o: "bilinear",
        lambda o: "https://huggingface.co/gberton/MegaLoc/resolve/main/model.safetensors",
        lambda o: "MegaLoc: DINOv2 ViT-B/14 + Sinkhorn aggregation + linear, 8448-d",
        "see Berton & Masone, CVPRW 2025 (arXiv 2502.17237)",
    ),
}


def arch(name: str) -> Arch:
    if name not in ARCHS:
        raise ValueError(f"unknown arch {name!r} (known: {', '.join(ARCHS)})")
    return ARCHS[name]
