"""Pose-window features and the ONNX pose-text runner (tiny onnx.helper models, no torch).
Parity/round trip of real exported models: tests/training/test_posetext_*.py."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from lavpr_ros.core.manifest import ModelChecksumError, ModelManifest, sha256_file  # noqa: E402
from lavpr_ros.core.pose_text import (  # noqa: E402
    FEATURES,
    PoseFeatureConfig,
    PoseTextModel,
    combine_scores,
    planar_poses,
    pose_window_features,
)

CFG = PoseFeatureConfig(window_s=10.0, steps=10, speed_scale=2.0, yaw_rate_scale=0.5)
E = 4


def _straight(v=1.0, n=61, rate=5.0, yaw=0.3):
    t = np.arange(n) / rate
    return t, np.stack([v * t * np.cos(yaw), v * t * np.sin(yaw), np.full(n, yaw)], axis=1)


def test_straight_line_features() -> None:
    t, p = _straight()
    f = pose_window_features(t, p, cfg=CFG)
    assert f.shape == (10, len(FEATURES)) and f.dtype == np.float32
    np.testing.assert_allclose(f[:, 0], 0.5, atol=1e-6)  # 1 m/s / 2
    np.testing.assert_allclose(f[:, 1:4], [[0, 1, 0]] * 10, atol=1e-6)
    np.testing.assert_array_equal(f[:, 4:], [[0, 1]] * 10)
    # keyframe-like irregular sampling of the same straight path gives the same features
    keep = [0, 3, 4, 11, 20, 33, 34, 50, 60]
    np.testing.assert_allclose(pose_window_features(t[keep], p[keep], cfg=CFG), f, atol=1e-5)
    # (T, 7) poses with quaternions == (T, 3)
    q = np.zeros((len(t), 7))
    q[:, :2] = p[:, :2]
    q[:, 5], q[:, 6] = np.sin(p[:, 2] / 2), np.cos(p[:, 2] / 2)
    np.testing.assert_allclose(pose_window_features(t, q, cfg=CFG), f, atol=1e-6)
    np.testing.assert_allclose(planar_poses(q), p, atol=1e-9)


def test_left_turn_stop_and_history_before_start() -> None:
    rate = 5.0
    t = np.arange(0, 12, 1 / rate)
    yaw = np.where(t < 6, 0.0, np.minimum((t - 6) * 0.4, np.pi / 2))  # turn left from t = 6 s
    v = np.where(t < 9, 1.0, 0.0)  # stop from t = 9 s
    x = np.concatenate([[0], np.cumsum(v * np.cos(yaw) / rate)[:-1]])
    y = np.concatenate([[0], np.cumsum(v * np.sin(yaw) / rate)[:-1]])
    f = pose_window_features(t, np.stack([x, y, yaw], 1), cfg=CFG)
    assert f[5, 1] > 0.5  # yaw rate 0.4 rad/s / 0.5 while turning left (positive)
    assert f[1, 3] < -0.5  # before the turn, heading is to the right of the final one
    assert f[-1, 4] == 1 and f[2, 4] == 0  # stopped at the end, moving earlier
    right = pose_window_features(t, np.stack([x, -y, -yaw], 1), cfg=CFG)
    np.testing.assert_allclose(right[:, 1], -f[:, 1], atol=1e-6)  # mirror: right turn
    # a window reaching 5 s before the first pose: those steps are marked invalid
    g = pose_window_features(t, np.stack([x, y, yaw], 1), end=float(t[0]) + 5.0, cfg=CFG)
    assert g[:5, 5].tolist() == [0] * 5 and g[5:, 5].tolist() == [1] * 5
    assert g[:5, 4].tolist() == [0] * 5  # not "stopped": there is no data


def test_feature_input_errors() -> None:
    t, p = _straight(n=5)
    with pytest.raises(ValueError, match="increasing"):
        pose_window_features(t[::-1], p, cfg=CFG)
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        pose_window_features(t, p[:, :2], cfg=CFG)
    with pytest.raises(ValueError, match="stamps"):
        pose_window_features(t[:3], p, cfg=CFG)
    with pytest.raises(ValueError, match="NaN"):
        pose_window_features(t, np.full_like(p, np.nan), cfg=CFG)


def _save(graph, path) -> None:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, path)


def _write(folder, wp: np.ndarray, wt: np.ndarray, text_model="fake-text"):
    folder.mkdir(parents=True, exist_ok=True)
    _save(
        helper.make_graph(
            [
                helper.make_node("ReduceMean", ["poses", "axes"], ["m"], keepdims=0),
                helper.make_node("MatMul", ["m", "w"], ["embeddings"]),
            ],
            "pose",
            [helper.make_tensor_value_info("poses", TensorProto.FLOAT, ["B", 10, 6])],
            [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["B", E])],
            [
                numpy_helper.from_array(wp, "w"),
                numpy_helper.from_array(np.array([1], np.int64), "axes"),
            ],
        ),
        folder / "pose.onnx",
    )
    _save(
        helper.make_graph(
            [helper.make_node("MatMul", ["text", "w"], ["embeddings"])],
            "text",
            [helper.make_tensor_value_info("text", TensorProto.FLOAT, ["B", 3])],
            [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["B", E])],
            [numpy_helper.from_array(wt, "w")],
        ),
        folder / "text.onnx",
    )
    extra = {
        "text_head": "text.onnx",
        "text_head_sha256": sha256_file(folder / "text.onnx"),
        "text_model": text_model,
        "text_dim": 3,
        "window_s": 10.0,
        "steps": 10,
        "speed_scale": 2.0,
        "yaw_rate_scale": 0.5,
        "stop_speed": 0.15,
    }
    ModelManifest(
        model_id="tiny-pt",
        kind="pose_text",
        file="pose.onnx",
        sha256=sha256_file(folder / "pose.onnx"),
        output_dim=E,
        input_name="poses",
        output_name="embeddings",
        extra=extra,
    ).save(folder)
    return folder


class _FakeText:
    model_id, dim = "fake-text", 3

    def encode(self, texts):
        table = {"left": [1, 0, 0], "stop": [0, 1, 0]}
        return np.array([table[t] for t in texts], np.float32)


def _l2(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_pose_text_model_scores(tmp_path) -> None:
    rng = np.random.default_rng(0)
    wp = rng.normal(size=(6, E)).astype(np.float32)
    wt = rng.normal(size=(3, E)).astype(np.float32)
    m = PoseTextModel(_write(tmp_path / "m", wp, wt), text_encoder=_FakeText())
    assert m.features == CFG and m.dim == E
    t, p = _straight()
    ends = [6.0, 9.0, 12.0]
    feats = m.window_features(t, p, ends)
    np.testing.assert_allclose(feats[1], pose_window_features(t, p, 9.0, CFG))
    pe = m.encode_poses(feats)
    np.testing.assert_allclose(pe, _l2(feats.mean(1) @ wp), atol=1e-5)
    te = m.encode_text(["left"])
    np.testing.assert_allclose(te[0], _l2(wt[0]), atol=1e-5)
    np.testing.assert_allclose(m.score_windows("left", t, p, ends), pe @ te[0], atol=1e-5)
    assert m.score_windows("left", t, p, []).shape == (0,)
    with pytest.raises(ValueError, match="pose features"):
        m.encode_poses(np.zeros((1, 9, 6), np.float32))
    np.testing.assert_allclose(combine_scores([1.0, 0.0], [0.0, 1.0], 0.25), [0.75, 0.25])
    with pytest.raises(ValueError):
        combine_scores([1.0], [1.0], 1.5)


def test_pose_text_model_refusals(tmp_path) -> None:
    rng = np.random.default_rng(1)
    wp, wt = rng.normal(size=(6, E)).astype(np.float32), rng.normal(size=(3, E)).astype(np.float32)
    folder = _write(tmp_path / "m", wp, wt, text_model="minilm-l6-v2")
    with pytest.raises(ValueError, match="trained on 'minilm-l6-v2'"):
        PoseTextModel(folder, text_encoder=_FakeText())
    with pytest.raises(ValueError, match="no text encoder"):
        PoseTextModel(folder).encode_text(["left"])
    with open(folder / "text.onnx", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelChecksumError, match="text head"):
        PoseTextModel(folder)
