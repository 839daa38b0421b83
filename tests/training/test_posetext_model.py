"""Pose-text: generator plausibility, real-data loader, a short contrastive run, export parity
and the manifest round trip into the runtime's PoseTextModel (training venv)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lavpr_train.posetext import train as pt_train  # noqa: E402
from lavpr_train.posetext.data import (  # noqa: E402
    feature_config,
    load_clip_folder,
    synthetic_set,
)
from lavpr_train.posetext.export import export_pose_text_model  # noqa: E402
from lavpr_train.posetext.generator import (  # noqa: E402
    IMP,
    NOUN,
    PAST,
    caption_for,
    compatible,
    make_clip,
    simulate,
)
from lavpr_train.posetext.model import PoseTextConfig, PoseTextModel  # noqa: E402


def test_unicycle_trajectories_are_physically_plausible() -> None:
    rng = np.random.default_rng(0)
    for events, turn in ((["straight_short", "left", "tail"], 1), (["right", "tail"], -1)):
        t, p, spans = simulate(events, rng, rate_hz=5.0)
        dt = np.diff(t)
        np.testing.assert_allclose(dt, 0.2)
        v = np.hypot(*np.diff(p[:, :2], axis=0).T) / dt
        assert v.max() < 3.5 and v.min() >= 0
        yaw = np.unwrap(p[:, 2])
        assert np.abs(np.diff(yaw) / dt).max() < 1.0  # rad/s: smoothed, bounded yaw rate
        total = turn * (yaw[-1] - yaw[0])
        assert np.deg2rad(55) < total < np.deg2rad(125)  # a 70-110 deg turn the right way
    t, p, spans = simulate(["straight_short", "stop", "tail"], rng)
    a, b = spans[1]
    v = np.hypot(*np.diff(p[:, :2], axis=0).T) / 0.2
    assert v[a + 6 : b - 2].max() < 0.05  # standing still in the middle of the stop


def test_captions_describe_the_last_manoeuvres() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        c = make_clip(rng)
        assert compatible(c.described, c.window_events)
        last = c.described[-1]
        words = IMP[last] + PAST[last] + NOUN[last]
        assert any(w in c.caption for w in words), (c.described, c.caption)
    assert caption_for(("left",), rng, "place").split()[0] in ("the", "where", "go")
    assert compatible(("left", "stop"), ["right", "left", "stop"])
    assert not compatible(("left", "stop"), ["left", "stop", "right"])


def test_real_clip_folder_loader(tmp_path) -> None:
    t = np.arange(100) / 10.0
    xy_yaw = np.stack([t, np.zeros_like(t), np.zeros_like(t)], 1)
    np.save(tmp_path / "a.npy", xy_yaw)
    (tmp_path / "a.json").write_text(
        json.dumps({"captions": ["go straight", "drive on"], "rate_hz": 10})
    )
    q = np.zeros((50, 7))
    q[:, 0], q[:, 6] = np.arange(50) * 0.2, 1.0
    np.save(tmp_path / "b.npy", q)
    (tmp_path / "b.json").write_text(json.dumps({"caption": "slow", "stamps": list(t[:50])}))
    s = load_clip_folder(tmp_path)
    cfg = feature_config()
    assert s.features.shape == (3, cfg.steps, 6) and s.captions == [
        "go straight",
        "drive on",
        "slow",
    ]
    assert s.positives.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert s.features[0, -1, 0] == pytest.approx(1.0 / cfg.speed_scale, abs=1e-5)
    assert s.features[2, -1, 0] == pytest.approx(2.0 / cfg.speed_scale, abs=1e-5)
    (tmp_path / "c.npy").write_bytes((tmp_path / "a.npy").read_bytes())
    with pytest.raises(FileNotFoundError, match="c.json"):
        load_clip_folder(tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({"captions": ["x"]}))
    with pytest.raises(ValueError, match="rate_hz"):
        load_clip_folder(tmp_path)


def _hashed_text(texts, *_args, **_kw):
    """Bag-of-words hashing embedding: a stand-in for MiniLM that keeps the test fast."""
    out = np.zeros((len(texts), 384), np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().replace(",", " ").split():
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 384] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9), "hashed"


def test_short_contrastive_run_lowers_loss_and_retrieves(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pt_train, "text_embeddings", _hashed_text)
    cfg = pt_train.PTTrainConfig(
        out=str(tmp_path / "run"), train_size=768, test_size=200, epochs=6, batch=128, lr=3e-3
    )
    res = pt_train.train_posetext(cfg, log=lambda *_: None)
    losses = [h["loss"] for h in res["history"]]
    assert losses[-1] < losses[0] - 0.3
    m = res["metrics"]
    assert m["compatible_R@1"] > 2 * m["chance_compatible_R@1"]
    assert (tmp_path / "run" / "posetext.pt").is_file()


def test_export_parity_and_runtime_round_trip(tmp_path) -> None:
    from lavpr_ros.core.manifest import load_manifest
    from lavpr_ros.core.pose_text import PoseTextModel as RuntimeModel

    torch.manual_seed(0)
    feats = asdict(feature_config())
    model = PoseTextModel(PoseTextConfig(steps=feats["steps"], text_dim=384)).eval()
    folder, errs = export_pose_text_model(
        model, tmp_path, feats, text_model="hashed", model_id="tiny-pt"
    )
    assert max(errs.values()) <= 1e-4
    man = load_manifest(folder)
    assert man.kind == "pose_text" and man.extra["text_head"] == "text.onnx"

    class FakeText:
        model_id, dim = "hashed", 384

        def encode(self, texts):
            return _hashed_text(texts)[0]

    rt = RuntimeModel(folder, text_encoder=FakeText())
    s = synthetic_set(16, seed=3, cfg=rt.features)
    with torch.no_grad():
        want_p = model.pose(torch.from_numpy(s.features)).numpy()
        want_t = model.text(torch.from_numpy(_hashed_text(s.captions)[0])).numpy()
    np.testing.assert_allclose(rt.encode_poses(s.features), want_p, atol=1e-4)
    np.testing.assert_allclose(rt.encode_text(s.captions), want_t, atol=1e-4)
    with pytest.raises(RuntimeError, match="parity"):
        export_pose_text_model(model, tmp_path, feats, model_id="never", tolerance=-1.0)
