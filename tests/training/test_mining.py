"""Mining returns only true positives / negatives by GPS distance."""

import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")

import numpy as np  # noqa: E402

from lavpr_train.losses import vpr_loss  # noqa: E402
from lavpr_train.mining import (  # noqa: E402
    PlaceIndex,
    batch_hard_pairs,
    gps_masks,
    hard_negative_places,
    place_batches,
    pml_triplets,
)


def _dist(xy):
    return np.linalg.norm(xy[:, None] - xy[None], axis=2)


def _route(n_places=40, per=3, spacing=30.0, seed=0):
    rng = np.random.default_rng(seed)
    centre = np.stack([np.arange(n_places) * spacing, np.zeros(n_places)], 1)
    xy = np.repeat(centre, per, 0) + rng.normal(0, 3.0, (n_places * per, 2))
    return xy, np.repeat(np.arange(n_places), per)


def test_gps_masks_by_distance():
    xy, _ = _route(10)
    pos, neg = gps_masks(xy, 25.0, 100.0)
    d = _dist(xy)
    assert (d[pos.numpy()] <= 25.0).all() and (d[neg.numpy()] > 100.0).all()
    assert not (pos & neg).any() and not pos.diagonal().any()
    between = (d > 25.0) & (d <= 100.0)
    assert not (pos.numpy() | neg.numpy())[between].any()  # ignore band


def test_hard_negatives_are_far_and_hard():
    xy, labels = _route(40)
    index = PlaceIndex(labels, xy)
    rng = np.random.default_rng(1)
    base = rng.normal(size=(40, 16))
    emb = base.copy()
    emb[25] = base[3] + 0.01 * rng.normal(size=16)  # place 25 looks like place 3 (far away)
    emb[4] = base[3] + 0.02 * rng.normal(size=16)  # place 4 also, but only 30 m away
    hn = hard_negative_places(emb, index, neg_radius=100.0, k=10, per_place=2)
    assert hn[3, 0] == 25  # the nearby look-alike (place 4) is not a negative
    for p in range(len(index)):
        for q in hn[p]:
            if q >= 0:
                d = _dist(np.concatenate([xy[index.members[p]], xy[index.members[q]]]))
                k = len(index.members[p])
                assert d[:k, k:].min() > 100.0


def test_place_batches_and_online_miners():
    xy, labels = _route(40)
    index = PlaceIndex(labels, xy)
    hn = hard_negative_places(np.random.default_rng(0).normal(size=(40, 8)), index)
    batches = place_batches(index, 8, 2, np.random.default_rng(0), hn)
    assert batches and all(len(b) == 16 for b in batches)
    for b in batches:
        assert len({int(labels[i]) for i in b}) == 8
    b = batches[0]
    pos, neg = gps_masks(xy[b])
    z = torch.nn.functional.normalize(torch.randn(len(b), 8), dim=1)
    a, p, n = batch_hard_pairs(z @ z.T, pos, neg)
    assert len(a) and pos[a, p].all() and neg[a, n].all()
    a, p, n = pml_triplets(z, torch.as_tensor(labels[b]), pos, neg, epsilon=1.0)
    assert pos[a, p].all() and neg[a, n].all()
    for kind in ("hybrid", "triplet", "infonce", "multisimilarity"):
        for miner in ("batch_hard", "multisimilarity"):
            loss, parts = vpr_loss(z, torch.as_tensor(labels[b]), pos, neg, kind, miner=miner)
            assert torch.isfinite(loss) and parts


def test_hybrid_is_weighted_sum():
    xy, labels = _route(8, 2)
    pos, neg = gps_masks(xy)
    z = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    lab = torch.as_tensor(labels)
    h, parts = vpr_loss(z, lab, pos, neg, "hybrid")
    assert h.item() == pytest.approx(0.3 * parts["triplet"] + 1.0 * parts["infonce"], rel=1e-5)
