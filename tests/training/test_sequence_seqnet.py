"""SeqNet: mining, a short training run, export parity and the manifest round trip into the
runtime's SequenceEncoder / LoopClosureDetector (training venv)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lavpr_train.sequence.evaluate import evaluate_sequence  # noqa: E402
from lavpr_train.sequence.export import export_sequence_model  # noqa: E402
from lavpr_train.sequence.mining import mine  # noqa: E402
from lavpr_train.sequence.model import SeqNet, SeqNetConfig  # noqa: E402
from lavpr_train.sequence.train import SeqTrainConfig, embed, train_seqnet  # noqa: E402


def _route(n: int = 260, dim: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two 'seasons' of one route: shared place signal + strong per-season noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim))
    a = base + 2.0 * rng.normal(size=(n, dim))
    b = base + 2.0 * rng.normal(size=(n, dim)) + 0.5
    out = []
    for x in (a, b):
        x = x.astype(np.float32)
        out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return out[0], out[1]


def test_mining_picks_true_negatives_and_the_closest_positive() -> None:
    idx = torch.arange(20)
    q = torch.nn.functional.normalize(torch.randn(20, 8), dim=-1)
    r = q.clone()
    r[7] = q[5]  # reference 7 looks exactly like query 5, but is inside its ignore band
    r[15] = q[5] * 0.9 + 0.1 * r[15]  # reference 15: the hardest *true* negative of query 5
    pos, neg = mine(q, r, idx, idx, pos_tol=1, neg_tol=4, num_neg=3)
    assert ((idx[:, None] - neg).abs() > 4).all()  # never inside the band
    assert ((pos - idx).abs() <= 1).all()
    assert neg[5, 0] == 15 and 7 not in neg[5].tolist()
    assert pos[5] == 5
    with pytest.raises(ValueError, match="true negatives"):
        mine(q, r, idx, idx, pos_tol=1, neg_tol=18, num_neg=3)


@pytest.mark.parametrize("mode", ["meanOfPairs", "centerOnly", "seqdesc"])
def test_descriptor_distance_is_the_training_distance(mode: str) -> None:
    cfg = SeqNetConfig(frame_dim=12, seq_len=6, kernel=3, channels=5, mode=mode)
    m = SeqNet(cfg).eval()
    x, y = torch.randn(2, 6, 12), torch.randn(2, 6, 12)
    with torch.no_grad():
        gx, gy = m(x), m(y)
        fx = torch.nn.functional.normalize(m.steps(x), dim=-1)
        fy = torch.nn.functional.normalize(m.steps(y), dim=-1)
    assert gx.shape == (2, cfg.output_dim)
    d = (gx - gy).pow(2).sum(-1)
    if mode == "meanOfPairs":
        torch.testing.assert_close(d, (fx - fy).pow(2).sum(-1).mean(1), atol=1e-5, rtol=1e-5)
    elif mode == "centerOnly":
        torch.testing.assert_close(d, (fx[:, 2] - fy[:, 2]).pow(2).sum(-1), atol=1e-5, rtol=1e-5)


def test_short_run_lowers_the_loss_and_beats_single_frames(tmp_path) -> None:
    data = _route()
    cfg = SeqTrainConfig(
        out=str(tmp_path / "run"),
        model=SeqNetConfig(frame_dim=24, seq_len=6, kernel=3, channels=16),
        train_range=(0, 200),
        epochs=4,
        batch=32,
        num_neg=3,
        lr=3e-3,
        cache=None,
    )
    res = train_seqnet(cfg, data=data, log=lambda *_: None)
    losses = [h["loss"] for h in res["history"]]
    assert losses[-1] < 0.7 * losses[0]
    assert (tmp_path / "run" / "seqnet.pt").is_file()
    # held-out frames 200..260 of the synthetic route
    from lavpr_train.sequence.data import windows

    model = res["model"]
    metrics = evaluate_sequence(
        lambda f: embed(model, windows(f, 6)).numpy(),
        6,
        test_range=(200, 260),
        shortlist_k=5,
        baseline_lengths=(6,),
        data=data,
    )
    assert metrics["queries"] == 55
    assert metrics["seqnet_R@1"] > metrics["single_frame_R@1"]
    assert 0 <= metrics["training_free_L6_R@1"] <= 1


def test_export_parity_and_runtime_round_trip(tmp_path) -> None:
    from lavpr_ros.core.loop_closure import LoopClosureConfig, LoopClosureDetector
    from lavpr_ros.core.manifest import load_manifest
    from lavpr_ros.core.place_map import PlaceMap
    from lavpr_ros.core.sequence_encoder import SequenceEncoder

    torch.manual_seed(0)
    model = SeqNet(SeqNetConfig(frame_dim=24, seq_len=6, kernel=3, channels=16)).eval()
    folder, err = export_sequence_model(model, tmp_path, "tiny-seqnet", frame_model="frames")
    assert err <= 1e-4
    m = load_manifest(folder)
    assert (m.kind, m.output_dim, m.extra["sequence_length"]) == ("sequence", 16 * 4, 6)
    enc = SequenceEncoder(folder)
    summer, _ = _route()
    wins = np.lib.stride_tricks.sliding_window_view(summer, 6, axis=0).transpose(0, 2, 1)
    with torch.no_grad():
        want = model(torch.from_numpy(np.ascontiguousarray(wins))).numpy()
    np.testing.assert_allclose(enc.encode_route(summer), want, atol=1e-4)
    pm = PlaceMap(24, "frames")
    for i, d in enumerate(summer[:50]):
        pm.add(d, float(i))
    cfg = LoopClosureConfig(
        mode="localisation",
        sequence_length=6,
        keyframe_min_distance_m=0,
        keyframe_min_rotation_rad=0,
        keyframe_max_interval_s=0,
    )
    det = LoopClosureDetector(pm, cfg, sequence_encoder=enc, sequence_shortlist_k=5)
    for t, i in enumerate(range(20, 30)):
        r = det.process(summer[i], 100.0 + t)
    assert r.decision.match_id == 29 and 29 in det.last_shortlist.shortlist.tolist()
    with pytest.raises(RuntimeError, match="parity"):
        export_sequence_model(model, tmp_path, "never", tolerance=-1.0)
    assert not (tmp_path / "never").exists()
