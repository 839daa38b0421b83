"""The architectures at their official sizes carry the published checkpoints' key names and
shapes (read from each project's code: CosPlace/EigenPlaces cosplace_network.py, MixVPR
main.py + resnet.py, BoQ hubconf.py, SALAD vpr_model.py + dinov2.py, MegaLoc megaloc_model.py).
Built on the meta device: no memory, no time."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lavpr_train.zoo.importer import build_model  # noqa: E402

CASES = {
    ("cosplace", "ResNet50", 2048): {
        "backbone.0.weight": [64, 3, 7, 7],
        "backbone.4.0.conv1.weight": [64, 64, 1, 1],
        "backbone.7.2.bn3.running_var": [2048],
        "aggregation.1.p": [1],
        "aggregation.3.weight": [2048, 2048],
    },
    ("cosplace", "ResNet152", 2048): {"backbone.6.35.conv3.weight": [1024, 256, 1, 1]},
    ("eigenplaces", "ResNet101", 128): {
        "backbone.6.22.bn3.weight": [1024],
        "aggregation.3.weight": [128, 2048],
    },
    ("eigenplaces", "ResNet18", 256): {
        "backbone.7.1.conv2.weight": [512, 512, 3, 3],
        "aggregation.3.weight": [256, 512],
    },
    ("eigenplaces", "VGG16", 512): {
        "backbone.28.weight": [512, 512, 3, 3],
        "aggregation.3.weight": [512, 512],
    },
    ("mixvpr", None, None): {
        "backbone.model.layer3.5.conv3.weight": [1024, 256, 1, 1],
        "aggregator.mix.3.mix.3.weight": [400, 400],
        "aggregator.channel_proj.weight": [1024, 1024],
        "aggregator.row_proj.weight": [4, 400],
    },
    ("boq", "resnet50", None): {
        "backbone.net.6.5.conv3.weight": [1024, 256, 1, 1],
        "aggregator.proj_c.weight": [512, 1024, 3, 3],
        "aggregator.boqs.0.encoder.self_attn.in_proj_weight": [1536, 512],
        "aggregator.boqs.1.queries": [1, 64, 512],
        "aggregator.fc.weight": [32, 128],
    },
    ("boq", "dinov2", None): {
        "backbone.dino.mask_token": [1, 768],
        "backbone.dino.pos_embed": [1, 1370, 768],
        "backbone.dino.blocks.11.ls2.gamma": [768],
        "aggregator.proj_c.weight": [384, 768, 3, 3],
        "aggregator.fc.weight": [32, 128],
    },
    ("salad", None, None): {
        "backbone.model.pos_embed": [1, 1370, 768],
        "backbone.model.blocks.11.attn.qkv.weight": [2304, 768],
        "backbone.model.norm.weight": [768],
        "aggregator.dust_bin": [],
        "aggregator.score.3.weight": [64, 512, 1, 1],
        "aggregator.cluster_features.3.weight": [128, 512, 1, 1],
        "aggregator.token_features.2.weight": [256, 512],
    },
    ("megaloc", None, None): {
        "backbone.patch_embed.proj.weight": [768, 3, 14, 14],
        "backbone.blocks.11.mlp.fc2.weight": [768, 3072],
        "aggregator.agg.cluster_features.3.weight": [256, 512, 1, 1],
        "aggregator.linear.weight": [8448, 16640],
    },
}
ABSENT = {
    "eigenplaces": ["backbone.30.weight"],
    "mixvpr": ["backbone.model.layer4.0.conv1.weight", "backbone.model.fc.weight"],
    "boq": ["backbone.net.7.0.conv1.weight"],
    "megaloc": ["backbone.mask_token"],
}


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: "-".join(str(x) for x in c))
def test_official_keys_and_shapes(case):
    name, backbone, dim = case
    with torch.device("meta"):
        model, _ = build_model(name, {"backbone": backbone, "dim": dim})
    sd = model.state_dict()
    for key, shape in CASES[case].items():
        assert key in sd, key
        assert list(sd[key].shape) == shape, key
    for key in ABSENT.get(name, []):
        assert key not in sd
