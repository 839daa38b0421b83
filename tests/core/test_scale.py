"""City-scale mechanics: shortlist sequence matching == full matching on real sequences, the auto
index choice (recorded in the manifest), float16/memory-mapped storage, old-format maps, and the
recall of the chosen index on real (augmented) Nordland descriptors."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import yaml

from lavpr_ros.core import descriptor_store, place_map
from lavpr_ros.core.datasets import corridor, nordland
from lavpr_ros.core.descriptor_store import DescriptorStore, choose_index
from lavpr_ros.core.encoders import create_encoder
from lavpr_ros.core.images import load_image
from lavpr_ros.core.loop_closure import LoopClosureConfig, LoopClosureDetector
from lavpr_ros.core.place_map import PlaceMap
from lavpr_ros.core.sequence import SequenceMatcher
from lavpr_ros.core.sequence_shortlist import ColumnMoments, ShortlistSequenceMatcher


@functools.cache
def _encoded(name: str, frames: int) -> tuple[np.ndarray, np.ndarray, list[set[int]]]:
    ds = nordland() if name == "nordland" else corridor()
    enc = create_encoder("patchnorm")
    ref = enc.encode([load_image(p) for p in ds.ref_paths])
    qry = enc.encode([load_image(p) for p in ds.query_paths[:frames]])
    return ref, qry, ds.positives[:frames]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _every_frame_config(**kw) -> LoopClosureConfig:
    """Localisation against a fixed map, every frame a keyframe (no poses here)."""
    return LoopClosureConfig(
        mode="localisation",
        keyframe_min_distance_m=0.0,
        keyframe_min_rotation_rad=0.0,
        keyframe_max_interval_s=0.0,
        **kw,
    )


def _decisions(ref, qry, search: str, contrast: bool, min_seq: float, min_conf: float):
    pm = PlaceMap(ref.shape[1], "patchnorm")
    pm.add_batch(ref, np.arange(len(ref), dtype=np.float64))
    cfg = _every_frame_config(
        sequence_length=10,
        min_sequence_frames=1,
        contrast_normalise=contrast,
        min_sequence_score=min_seq,
        min_confidence=min_conf,
        sequence_search=search,
        shortlist_min_places=0,
    )
    det = LoopClosureDetector(pm, cfg)
    return [det.process(q, float(i)).decision for i, q in enumerate(qry)]


@pytest.mark.parametrize(
    ("name", "frames", "options"),
    # Corridor: raw cosines (its README setting), whose scores/margins are small: thresholds 0.
    [("nordland", 150, (True, 0.5, 0.5)), ("corridor", 0, (False, 0.0, 0.0))],
)
def test_shortlist_matcher_decides_as_the_full_matcher_on_real_sequences(name, frames, options):
    ref, qry, _ = _encoded(name, frames or 10_000)
    full = _decisions(ref, qry, "full", *options)
    short = _decisions(ref, qry, "shortlist", *options)
    assert sum(d.accepted for d in full) > 0
    differ = 0
    for a, b in zip(full, short, strict=True):
        if a.accepted and b.accepted:
            assert a.match_id == b.match_id
        if a.match_id == b.match_id:
            assert b.sequence_score == pytest.approx(a.sequence_score, abs=1e-5)
            # The shortlist's runner-up is the best of a subset: never above the full one's.
            assert b.confidence >= a.confidence - 1e-5
        if a.accepted != b.accepted:  # a runner-up no index candidate points at (module doc)
            differ += 1
            assert a.match_id == b.match_id
    print(f"{name}: {differ} of {len(full)} acceptance decisions differ")
    # Measured at 3576 places (where auto would run the full matcher): 10 of 150 with the default
    # 30 candidates, 8 with 50, 4 with 100; Corridor 0 of 111 (docs/scale.md).
    assert differ <= 0.07 * len(full)


def test_shortlist_scores_equal_full_scores_where_computed() -> None:
    ref, qry, _ = _encoded("nordland", 40)
    ref, qry = _unit(ref[:400]), _unit(qry)
    store = DescriptorStore(ref.shape[1])
    store.append(ref)
    full = SequenceMatcher(length=10, min_length=1)
    short = ShortlistSequenceMatcher(SequenceMatcher(length=10, min_length=1), store)
    for q in qry:
        sims = ref @ q
        a = full.update(sims)
        b = short.update(q, len(ref), np.argsort(-sims)[:20])
        seen = np.isfinite(b.scores)
        assert seen.sum() < len(ref)  # a shortlist, not every place
        np.testing.assert_allclose(b.scores[seen], a.scores[seen], atol=1e-5)


def test_cached_values_equal_full_scores_through_jumps_gaps_and_a_growing_file_map(
    tmp_path, monkeypatch
) -> None:
    """The shortlist computes a (frame, place) value once and reuses it: places that stay in
    the shortlist, leave and come back (a gap), slots freed and reused by other places, and a
    map that grows after it was loaded from a float16 file must all give the full matcher's
    scores."""
    monkeypatch.setattr(descriptor_store, "_RAM_BELOW_BYTES", 0)  # file-backed, float16
    ref, qry, _ = _encoded("nordland", 60)
    ref, qry = _unit(ref[:2400]), _unit(qry)
    saved = DescriptorStore(ref.shape[1], "float16")
    saved.append(ref[:2000])
    saved.save(tmp_path / "d.npy")
    store = DescriptorStore.load(tmp_path / "d.npy", 2000, ref.shape[1])
    assert store.file_backed
    rows = np.concatenate((store.rows(np.arange(2000)), ref[2000:].astype(np.float16)))
    rows = rows.astype(np.float32)  # what the full matcher sees: the stored values
    full = SequenceMatcher(length=10, min_length=1)
    short = ShortlistSequenceMatcher(SequenceMatcher(length=10, min_length=1), store)
    rng = np.random.default_rng(0)
    n, freed = 2000, 0
    for t, q in enumerate(qry):
        if t >= 10:  # the map grows by 5 places per frame
            store.append(ref[n : n + 5])
            n += 5
        sims = rows[:n] @ q
        a = full.update(sims)
        # Alternate the index's best places with random far-away ones: shortlists jump, places
        # leave and return, and the row cache frees and reuses slots.
        ids = np.argsort(-sims)[:20] if t % 3 else rng.choice(n, 60, replace=False)
        live = short._live
        b = short.update(q, n, ids)
        freed += short._live < live
        seen = np.isfinite(b.scores)
        np.testing.assert_allclose(b.scores[seen], a.scores[seen], atol=1e-5)
        assert b.index == a.index or b.score <= a.score + 1e-5  # a tie up to rounding
    assert freed >= 10  # the row cache freed slots (and reused them) again and again


def test_column_moments_give_the_exact_std() -> None:
    x = _unit(np.random.default_rng(0).standard_normal((500, 16)))
    store = DescriptorStore(16)
    store.append(x)
    mom = ColumnMoments(16)
    mom.advance(store, 300)
    q = x[7]
    assert mom.std(q) == pytest.approx(float((x[:300] @ q).astype(np.float64).std()), rel=1e-6)
    # One keyframe at a time across a fold of the pending block into the moment matrix.
    step = ColumnMoments(16)
    step.fold_rows = 64
    for n in range(1, 501):
        step.advance(store, n)
        if n in (63, 64, 65, 200, 500):
            exact = float((x[:n] @ q).astype(np.float64).std())
            assert step.std(q) == pytest.approx(exact, rel=1e-5), n


def test_quadratic_form_from_the_upper_blocks_is_exact() -> None:
    from lavpr_ros.core.sequence_shortlist import _quadratic_form

    rng = np.random.default_rng(1)
    for dim in (1001, 3328):  # odd halves; the default encoder's size (two levels of blocks)
        x = rng.standard_normal((300, dim)).astype(np.float32)
        c = x.T @ x
        q = rng.standard_normal(dim).astype(np.float32)
        exact = float(q.astype(np.float64) @ c.astype(np.float64) @ q)
        assert _quadratic_form(c, q) == pytest.approx(exact, rel=1e-5)


def test_auto_index_choice_per_size() -> None:
    assert choose_index(10_000, 1280)["index_type"] == "flat"
    big = choose_index(1_000_000, 1280)
    assert big["index_type"] == "pcapq" and big["pca_dim"] == 256
    assert choose_index(50_000, 3328)["pca_dim"] == 256  # the default encoder
    assert choose_index(60_000, 101)["pca_dim"] == 100  # small odd dims: a rotation only


@pytest.fixture
def small_auto_threshold(monkeypatch):
    monkeypatch.setattr(descriptor_store, "AUTO_FLAT_BELOW", 12_000)
    monkeypatch.setattr(place_map, "AUTO_FLAT_BELOW", 12_000)


def _nordland_expanded(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Real summer descriptors + descriptor-space mixtures (as `lavpr bench scale`); winter
    frames are the (real, held-out) queries."""
    from lavpr_ros.cli.bench_scale import expand

    ref, qry, _ = _encoded("nordland", 60)
    return np.asarray(expand(_unit(ref), n, seed=0), dtype=np.float32), _unit(qry)


def test_auto_switches_to_pcapq_with_recall_on_real_descriptors(small_auto_threshold, tmp_path):
    x, queries = _nordland_expanded(16_000)
    m = PlaceMap(x.shape[1], "patchnorm", "auto", storage="float16")
    m.add_batch(x[:10_000], np.arange(10_000, dtype=np.float64))
    assert m.index_type == "flat"
    m.add_batch(x[10_000:], np.arange(10_000, 16_000, dtype=np.float64))
    assert m.index_type == "pcapq" and m.index.ntotal == 16_000
    m.add(x[1234], 16_000.0)  # grows one place at a time after the switch, as a mapping robot does
    # PCA-PQ adds places in batches; until then they are searched exactly.
    assert m.index.ntotal == 16_000 and 16_000 in {i for i, _ in m.search(x[1234], 3)}
    assert 16_000 in {i for i, _ in m.search(x[1234], 3, rescore=False)}
    assert 16_000 not in {i for i, _ in m.search(x[1234], 3, exclude_last_n=1)}
    m.save(tmp_path / "map")
    meta = yaml.safe_load((tmp_path / "map" / "manifest.yaml").read_text())
    choice = meta["index_choice"]
    assert choice["requested"] == "auto" and "PCA-PQ" in choice["reason"]
    assert meta["descriptor_storage"] == "float16" and meta["index_params"]["pca_dim"] == 256
    loaded = PlaceMap.load(tmp_path / "map")
    assert loaded.index_type == "pcapq" and loaded.index_request == "auto"
    assert 16_000 in {i for i, _ in loaded.search(x[1234], 3)}  # Nordland repeats some frames
    assert loaded.index.ntotal == 16_001  # the save added the pending place to the index
    stored = loaded.descriptor_rows(np.arange(16_001))
    hits = 0
    for q in queries:
        exact = set(np.argsort(-(stored @ q), kind="stable")[:5].tolist())
        hits += len(exact & {i for i, _ in loaded.search(q, 5)})
    assert hits / (5 * len(queries)) >= 0.9


def test_float16_store_round_trip_is_file_backed(tmp_path, monkeypatch) -> None:
    x = _unit(np.random.default_rng(1).standard_normal((300, 64)))
    store = DescriptorStore(64, "float16")
    store.append(x)
    store.save(tmp_path / "d.npy")
    assert np.load(tmp_path / "d.npy").dtype == np.float16
    back = DescriptorStore.load(tmp_path / "d.npy", 300, 64)
    np.testing.assert_allclose(back.rows(np.array([5, 3, 299])), x[[5, 3, 299]], atol=1e-3)
    assert not back.file_backed  # small: float32 in RAM
    monkeypatch.setattr(descriptor_store, "_RAM_BELOW_BYTES", 0)
    big = DescriptorStore.load(tmp_path / "d.npy", 300, 64)
    assert big.file_backed
    big.append(x[:2])  # new places go to the in-RAM tail of a loaded map
    assert len(big) == 302
    np.testing.assert_allclose(big.dot(x[0]), np.r_[x @ x[0], x[:2] @ x[0]], atol=2e-3)
    with pytest.raises(ValueError, match="expected float32 or float16"):
        DescriptorStore.load(tmp_path / "d.npy", 301, 64)


def test_large_map_rows_are_read_not_mapped(tmp_path, monkeypatch) -> None:
    """A loaded large map reads the rows a frame needs (runs of ids in one read each) and never
    maps the file: mapped pages would stay in the process's resident set."""
    x = _unit(np.random.default_rng(4).standard_normal((500, 48)))
    store = DescriptorStore(48, "float16")
    store.append(x)
    store.save(tmp_path / "d.npy")
    monkeypatch.setattr(descriptor_store, "_RAM_BELOW_BYTES", 0)
    big = DescriptorStore.load(tmp_path / "d.npy", 500, 48)
    ids = np.array([7, 8, 9, 10, 250, 3, 499, 8])  # runs, a repeat, out of order
    np.testing.assert_allclose(big.rows(ids), x[ids], atol=1e-3)
    np.testing.assert_allclose(big.slice(495, 500), x[495:], atol=1e-3)
    np.testing.assert_allclose(big.dot(x[1]), x @ x[1], atol=2e-3)
    assert str(tmp_path / "d.npy") not in Path("/proc/self/maps").read_text()
    big.close()


def test_pq_search_without_rescoring_then_shortlist_exact_candidates(tmp_path) -> None:
    """rescore=False returns the index's ranking; the detector's candidates are still exact
    cosines, best first (the shortlist re-scores them from its row cache)."""
    x, queries = _nordland_expanded(12_000)
    m = PlaceMap(x.shape[1], "patchnorm", "hnswpq", pq_m=128)
    m.add_batch(x, np.arange(12_000, dtype=np.float64))
    approx = m.search(queries[0], 50, rescore=False)
    assert len(approx) == 50
    # The HNSW-PQ index survives a save (its manifest pq_m/hnsw_m checked against the file).
    m.save(tmp_path / "map")
    m = PlaceMap.load(tmp_path / "map")
    assert m.index_type == "hnswpq" and m.index.ntotal == 12_000
    assert [i for i, _ in m.search(queries[0], 50, rescore=False)] == [i for i, _ in approx]
    exact_all = m.descriptor_rows(np.arange(12_000)) @ queries[0]
    cfg = _every_frame_config(
        sequence_length=5, sequence_search="shortlist", shortlist_candidates=50
    )
    det = LoopClosureDetector(m, cfg)
    res = det.process(queries[0], 0.0)
    cands = res.candidates
    assert [s for _, s in cands] == sorted((s for _, s in cands), reverse=True)
    for i, s in cands:
        assert s == pytest.approx(float(exact_all[i]), abs=2e-3)
    assert cands[0][0] == int(np.argmax(exact_all))


def test_file_backed_map_searches_and_grows(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(descriptor_store, "_CHUNK", 100)  # several chunks in every scan
    x = _unit(np.random.default_rng(2).standard_normal((400, 32)))
    m = PlaceMap(32, "m", storage="float16")
    m.add_batch(x, np.arange(400, dtype=np.float64))
    m.save(tmp_path / "map")
    monkeypatch.setattr(descriptor_store, "_RAM_BELOW_BYTES", 0)
    loaded = PlaceMap.load(tmp_path / "map")
    assert loaded.store.file_backed and loaded.descriptors.dtype == np.float16
    assert loaded.search(x[17], 1)[0][0] == 17
    loaded.add(x[3], 400.0)
    assert [i for i, _ in loaded.search(x[3], 2)] in ([3, 400], [400, 3])
    loaded.save(tmp_path / "map")
    assert len(PlaceMap.load(tmp_path / "map")) == 401


def test_old_float32_maps_without_the_new_manifest_keys_still_load(tmp_path) -> None:
    x = _unit(np.random.default_rng(3).standard_normal((50, 32)))
    m = PlaceMap(32, "m", "hnsw")
    m.add_batch(x, np.arange(50, dtype=np.float64))
    m.save(tmp_path / "map")
    path = tmp_path / "map" / "manifest.yaml"
    meta = yaml.safe_load(path.read_text())
    del meta["index_choice"], meta["descriptor_storage"]
    path.write_text(yaml.safe_dump(meta, sort_keys=False))
    loaded = PlaceMap.load(tmp_path / "map")
    assert loaded.index_type == loaded.index_request == "hnsw"
    assert loaded.store.storage == "float32" and loaded.descriptors.dtype == np.float32
    assert loaded.search(x[9], 1)[0][0] == 9


def test_float16_rows_decode_exactly_as_numpy_casts() -> None:
    from lavpr_ros.core.descriptor_store import as_float32

    x = np.random.default_rng(5).standard_normal((37, 3328)).astype(np.float16)
    x[0, :4] = [np.float16(6.1e-5), np.float16(-0.0), np.float16(65504), np.float16(1e-7)]
    np.testing.assert_array_equal(as_float32(x), x.astype(np.float32))
    np.testing.assert_array_equal(as_float32(x[::2]), x[::2].astype(np.float32))  # strided
    assert as_float32(x[:0]).shape == (0, 3328)
    out = np.full((18, 3328), np.nan, dtype=np.float32)
    assert as_float32(x[1:19], out) is out  # decoded in place (a block of a larger output)
    np.testing.assert_array_equal(out, x[1:19].astype(np.float32))


def test_rows_across_the_file_and_the_appended_rows(tmp_path, monkeypatch) -> None:
    """The shortlist's fetch: sorted ids over the file's rows and rows appended since the load
    (each block decoded into its part of the output), and unsorted ids with repeats."""
    x = _unit(np.random.default_rng(6).standard_normal((300, 32)))
    m = PlaceMap(32, "m", storage="float16")
    m.add_batch(x[:250], np.arange(250, dtype=np.float64))
    m.save(tmp_path / "map")
    monkeypatch.setattr(descriptor_store, "_RAM_BELOW_BYTES", 0)
    loaded = PlaceMap.load(tmp_path / "map")
    loaded.add_batch(x[250:], np.arange(250, 300, dtype=np.float64))
    want = x.astype(np.float16).astype(np.float32)
    for ids in ([3, 4, 5, 249, 250, 251, 299], [250, 260], [0, 1, 2], [299, 3, 3, 251]):
        got = loaded.store.rows(np.array(ids))
        np.testing.assert_array_equal(got, want[ids], err_msg=str(ids))


def test_route_distractors_keep_neighbouring_ids_neighbouring_places() -> None:
    """`lavpr bench scale --distractors routes`: after the real rows, runs whose consecutive
    ids mix consecutive route places, so a place resembles its id neighbours (i.i.d. mixtures'
    neighbours are unrelated places)."""
    from lavpr_ros.cli.bench_scale import expand, expand_routes

    ref, _, _ = _encoded("nordland", 1)
    base = _unit(ref[:600])  # route order
    routes = np.asarray(expand_routes(base, 5_600, seed=0, run=1000), dtype=np.float32)
    mixed = np.asarray(expand(base, 5_600, seed=0), dtype=np.float32)
    np.testing.assert_allclose(routes[:600], base, atol=1e-3)
    assert np.allclose(np.linalg.norm(routes, axis=1), 1.0, atol=1e-2)

    def neighbour_cos(x: np.ndarray) -> float:
        tail = x[600:]
        return float(np.mean(np.sum(tail[1:] * tail[:-1], axis=1)))

    assert neighbour_cos(routes) > neighbour_cos(mixed) + 0.05


def test_window_union_is_the_union_of_every_window() -> None:
    from lavpr_ros.core.sequence_shortlist import _window_union

    rng = np.random.default_rng(7)
    for _ in range(500):
        n, r = int(rng.integers(1, 300)), int(rng.integers(0, 6))
        after = int(rng.integers(0, 12)) if rng.random() < 0.5 else None
        centres = np.unique(rng.integers(-10, n + 10, int(rng.integers(0, 40))))
        span = np.arange(-r, (r if after is None else after) + 1)
        want = np.unique((centres[:, None] + span[None, :]).ravel()) if len(centres) else []
        want = np.asarray(want, dtype=np.int64)
        want = want[(want >= 0) & (want < n)]
        np.testing.assert_array_equal(_window_union(centres, r, n, after), want)


def test_contributing_places_are_every_end_minus_every_offset() -> None:
    """The places a trajectory ending at any shortlisted end passes, for contiguous offsets
    (the default velocities: merged windows) and for gapped ones (other velocities)."""
    rng = np.random.default_rng(3)
    store = DescriptorStore(4)
    for velocities in (None, (0.5, 2.0)):
        m = ShortlistSequenceMatcher(SequenceMatcher(length=10, velocities=velocities), store)
        offs = m.p._offsets
        for _ in range(50):
            ends = np.unique(rng.integers(0, 400, int(rng.integers(1, 60))))
            want = np.unique((ends[None, :] - np.unique(offs)[:, None]).ravel())
            np.testing.assert_array_equal(m._contributing(ends, offs), want[want >= 0])


def test_pending_places_are_searched_exactly_as_they_arrive() -> None:
    """PCA-PQ keeps up to 255 new places outside the index (decoded once, searched exactly):
    each new place is found at cosine 1 while it waits, after its batch enters the index, and
    when the newest ones are excluded."""
    x = _unit(np.random.default_rng(8).standard_normal((900, 16)))
    m = PlaceMap(16, "m", "pcapq", pca_dim=8)
    for i in range(900):
        m.add(x[i], float(i))
        if i >= 650 and i % 5 == 0:
            found = dict(m.search(x[i], 3))
            assert found.get(i) == pytest.approx(1.0, abs=1e-5), (i, m.index.ntotal)
            assert m.search(x[i - 3], 1)[0][0] == i - 3
            assert i not in dict(m.search(x[i], 3, exclude_last_n=2))
    assert m.index.ntotal > 624  # a batch entered the index on the way
