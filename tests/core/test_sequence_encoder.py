"""SequenceEncoder, SequenceIndex, diagonal_scores, hierarchical_search and the loop-closure hook,
with a tiny ONNX model built by onnx.helper (runtime venv: no torch). Parity with real exported
SeqNet models is checked by tests/training/test_sequence_*.py."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from lavpr_ros.core.loop_closure import LoopClosureConfig, LoopClosureDetector  # noqa: E402
from lavpr_ros.core.manifest import ModelChecksumError, ModelManifest, sha256_file  # noqa: E402
from lavpr_ros.core.place_map import PlaceMap  # noqa: E402
from lavpr_ros.core.sequence_encoder import (  # noqa: E402
    FrameWindow,
    SequenceEncoder,
    SequenceIndex,
    SequenceModelError,
    diagonal_scores,
    hierarchical_search,
)

L, D, E = 4, 8, 6


def _write_model(folder, w: np.ndarray, kind: str = "sequence", frame_model: str = "frames"):
    """descriptors = mean_t(sequences) @ w  (B, L, D) -> (B, E)."""
    g = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["sequences", "axes"], ["m"], keepdims=0),
            helper.make_node("MatMul", ["m", "w"], ["descriptors"]),
        ],
        "tiny_seq",
        [helper.make_tensor_value_info("sequences", TensorProto.FLOAT, ["B", L, D])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["B", w.shape[1]])],
        [
            numpy_helper.from_array(w.astype(np.float32), "w"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    m = ModelManifest(
        model_id="tiny-seq",
        kind=kind,
        file="model.onnx",
        sha256=sha256_file(folder / "model.onnx"),
        output_dim=int(w.shape[1]),
        input_name="sequences",
        output_name="descriptors",
        extra={"sequence_length": L, "frame_dim": int(w.shape[0]), "frame_model": frame_model},
    )
    m.save(folder)
    return folder


@pytest.fixture()
def weights() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(D, E)).astype(np.float32)


def _ref(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    y = x.mean(axis=1) @ w
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_encode_matches_numpy_and_route_windows(tmp_path, weights) -> None:
    enc = SequenceEncoder(_write_model(tmp_path / "m", weights))
    assert (enc.length, enc.frame_dim, enc.dim, enc.frame_model) == (L, D, E, "frames")
    x = np.random.default_rng(1).normal(size=(5, L, D)).astype(np.float32)
    y = enc.encode(x)
    np.testing.assert_allclose(y, _ref(x, weights), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(enc.encode(x[2]), y[2], atol=1e-6)  # a single (L, D) window
    frames = np.random.default_rng(2).normal(size=(11, D)).astype(np.float32)
    route = enc.encode_route(frames, batch=3)
    assert route.shape == (11 - L + 1, E)
    for i in range(len(route)):  # row i: window ending at frame i + L - 1
        np.testing.assert_allclose(route[i], enc.encode(frames[i : i + L]), atol=1e-6)
    assert enc.encode_route(frames[: L - 1]).shape == (0, E)
    with pytest.raises(ValueError, match="shape"):
        enc.encode(np.zeros((2, L + 1, D), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        enc.encode(np.full((1, L, D), np.nan, np.float32))


def test_encoder_refuses_wrong_kind_checksum_and_frame_model(tmp_path, weights) -> None:
    with pytest.raises(SequenceModelError, match="kind"):
        SequenceEncoder(_write_model(tmp_path / "k", weights, kind="text"))
    folder = _write_model(tmp_path / "c", weights)
    enc = SequenceEncoder(folder)
    with pytest.raises(SequenceModelError, match="trained on 'frames'"):
        enc.check_frame_model("other-model")
    enc.check_frame_model("frames")
    with open(folder / "model.onnx", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelChecksumError):
        SequenceEncoder(folder)


def test_frame_window_and_index() -> None:
    fw = FrameWindow(3)
    assert fw.push(np.ones(2)) is None and fw.push(np.ones(2) * 2) is None
    np.testing.assert_array_equal(fw.push(np.ones(2) * 3)[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(fw.push(np.ones(2) * 4)[:, 0], [2, 3, 4])
    idx = SequenceIndex(3)
    eye = np.eye(3, dtype=np.float32)
    idx.add([5, 9, 2], eye)
    ids, sims = idx.search(np.array([0, 1, 0.5]), 2)
    assert ids.tolist() == [9, 2] and sims[0] == pytest.approx(1.0)
    ids, _ = idx.search(np.array([0, 1, 0.5]), 3, max_id=6)  # 9 is excluded
    assert ids.tolist() == [2, 5]
    assert len(idx.search(np.ones(3), 3, max_id=0)[0]) == 0
    with pytest.raises(ValueError, match="already indexed"):
        idx.add([9], eye[:1])


def test_diagonal_scores_prefers_the_aligned_end() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(30, D)).astype(np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    q = ref[10:15] + 0.05 * rng.normal(size=(5, D)).astype(np.float32)
    s = diagonal_scores(q, ref, np.arange(30))
    assert int(np.argmax(s)) == 14
    # a query at twice the map's speed is found with velocity 2
    q2 = ref[[6, 8, 10, 12, 14]]
    assert diagonal_scores(q2, ref, [14], velocities=(2.0,))[0] == pytest.approx(1.0, abs=1e-5)
    assert diagonal_scores(q2, ref, [14])[0] < 0.9
    # windows reaching before the route start count 0 for the missing frames
    q3 = np.concatenate([ref[20:22], ref[0:3]])  # its last 3 frames are the route's first 3
    assert diagonal_scores(q3, ref, [2])[0] == pytest.approx(3 / 5, abs=1e-5)


def test_hierarchical_search_reranks_only_the_shortlist() -> None:
    idx = SequenceIndex(2)
    idx.add([0, 1, 2, 3], np.array([[1, 0], [0.9, 0.1], [0, 1], [0.8, 0.2]], np.float32))
    rerank = np.array([0.1, 0.5, 9.0, 0.7])  # place 2 is best overall but not shortlisted
    h = hierarchical_search(np.array([1.0, 0.0]), idx, 3, rerank)
    assert set(h.shortlist.tolist()) == {0, 1, 3} and h.index == 3
    h = hierarchical_search(np.array([1.0, 0.0]), idx, 3, lambda ids: -ids.astype(float))
    assert h.index == 0
    assert hierarchical_search(np.array([1.0, 0.0]), idx, 3, rerank, max_id=0) is None


class _OneHotEncoder:
    """Duck-typed sequence encoder: each place's window -> one-hot of its end id; every query
    window -> the one-hot of ``target`` (so the shortlist of size 1 is exactly ``target``)."""

    def __init__(self, n: int, target: int, frame_dim: int) -> None:
        self.length, self.frame_dim, self.dim, self.model_id = 3, frame_dim, n, "onehot"
        self.target, self.routes = target, 0

    def check_frame_model(self, frame_model_id: str) -> None:
        pass

    def encode(self, window: np.ndarray) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        v[self.target] = 1
        return v

    def encode_route(self, frames: np.ndarray) -> np.ndarray:
        self.routes += 1
        start = self._next
        out = np.zeros((len(frames) - self.length + 1, self.dim), np.float32)
        for r in range(len(out)):
            out[r, start + r] = 1
        self._next = start + len(out)
        return out

    _next = 2  # first indexed place = length - 1


def _map(n: int, dim: int = 16) -> tuple[PlaceMap, np.ndarray]:
    d = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pm = PlaceMap(dim, "frames")
    for i in range(n):
        pm.add(d[i], float(i))
    return pm, d


def _localisation(**kw) -> LoopClosureConfig:
    return LoopClosureConfig(
        mode="localisation",
        keyframe_min_distance_m=0.0,
        keyframe_min_rotation_rad=0.0,
        keyframe_max_interval_s=0.0,
        **kw,
    )


def test_loop_closure_hook_restricts_the_decision_to_the_shortlist() -> None:
    pm, d = _map(40)
    plain = LoopClosureDetector(pm, _localisation(sequence_length=5))
    hooked = LoopClosureDetector(
        pm,
        _localisation(sequence_length=5),
        sequence_encoder=_OneHotEncoder(40, 12, 16),
        sequence_shortlist_k=1,
    )
    for i, t in zip(range(25, 33), range(100, 108), strict=True):
        r_plain = plain.process(d[i], float(t))
        r_hook = hooked.process(d[i], float(t))
    assert plain.seq_window is None and plain.last_shortlist is None
    assert r_plain.decision.match_id == 32  # the sequence matcher alone
    assert r_hook.decision.match_id == 12  # forced by the (one-place) shortlist
    assert hooked.last_shortlist.shortlist.tolist() == [12]
    assert len(hooked.seq_index) == 40 - 2  # every window of 3 consecutive places, once
    assert hooked.sequence_encoder.routes == 1  # the map did not grow: indexed once
    # single-frame matching: the candidates come from the shortlist
    single = LoopClosureDetector(
        pm,
        _localisation(sequence_length=0),
        sequence_encoder=_OneHotEncoder(40, 7, 16),
        sequence_shortlist_k=1,
    )
    for t, i in enumerate(range(20, 24)):
        r = single.process(d[i], float(t))
    assert r.decision.match_id == 7 and r.candidates[0][0] == 7


def test_loop_closure_hook_checks_dimensions(tmp_path, weights) -> None:
    pm, _ = _map(5, dim=16)
    enc = SequenceEncoder(_write_model(tmp_path / "m", weights))  # D = 8 != 16
    with pytest.raises(ValueError, match="8-d"):
        LoopClosureDetector(pm, _localisation(), sequence_encoder=enc)


def test_loop_closure_with_onnx_encoder_finds_the_revisit(tmp_path) -> None:
    pm, d = _map(60, dim=D)
    w = np.random.default_rng(5).normal(size=(D, E)).astype(np.float32)
    enc = SequenceEncoder(_write_model(tmp_path / "m", w))
    det = LoopClosureDetector(
        pm, _localisation(sequence_length=5), sequence_encoder=enc, sequence_shortlist_k=5
    )
    rng = np.random.default_rng(6)
    for t, i in enumerate(range(30, 40)):
        x = d[i] + 0.05 * rng.normal(size=D).astype(np.float32)
        r = det.process(x / np.linalg.norm(x), float(t))
    assert r.decision.match_id == 39
    assert 39 in det.last_shortlist.shortlist.tolist()
