"""core/cross_modal.py: a text query searched among image descriptors of a PlaceMap.

The model here is the default text model re-labelled as mapping into the descriptor space of an
'image model' whose descriptors are text embeddings (a 384-d space both sides share), so the
expected answer is known; the trained projection is covered by tests/training."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from lavpr_ros.core.cross_modal import CrossModalError, CrossModalRetriever
from lavpr_ros.core.place_map import PlaceMap
from lavpr_ros.core.text_encoder import TextEncoder


@pytest.fixture(scope="module")
def cross_model(tmp_path_factory, text_model):
    d = tmp_path_factory.mktemp("xm")
    src = text_model.parent
    for name in ("model.onnx", "tokenizer.json", "manifest.yaml"):
        shutil.copy(src / name, d / name)
    raw = yaml.safe_load((d / "manifest.yaml").read_text())
    raw["model_id"] = "text-into-space-S"
    raw.setdefault("extra", {})["target_image_model"] = "space-S"
    (d / "manifest.yaml").write_text(yaml.safe_dump(raw))
    return d


def test_finds_undescribed_places_by_their_descriptors(cross_model, text_model) -> None:
    scenes = ["a red fire extinguisher", "grey lockers in a row", "a staircase", "a kitchen sink"]
    vecs = TextEncoder(text_model).encode(scenes)
    pm = PlaceMap(vecs.shape[1], "space-S")
    pm.add_batch(vecs, np.arange(len(scenes)))  # no descriptions at all
    cm = CrossModalRetriever(cross_model)
    hits = cm.search(pm, "where are the lockers?", k=2)
    assert hits[0].place_id == 1 and hits[0].score > hits[1].score
    assert all(pm.get(h.place_id).description == "" for h in hits)
    ranked = cm.rank(["stairs going up", "the sink"], vecs, k=1)
    assert ranked[:, 0].tolist() == [2, 3]
    with pytest.raises(ValueError, match="empty"):
        cm.search(pm, "  ")
    assert cm.search(PlaceMap(vecs.shape[1], "space-S"), "x") == []


def test_refuses_other_spaces_and_plain_text_models(cross_model, text_model) -> None:
    cm = CrossModalRetriever(cross_model)
    with pytest.raises(CrossModalError, match="space-S"):
        cm.search(PlaceMap(cm.dim, "mobilenetv2-gem-imagenet"), "lockers")
    with pytest.raises(CrossModalError, match="target_image_model"):
        CrossModalRetriever(text_model)
