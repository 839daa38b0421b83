"""Offline bag evaluation: two independent mcap writers, sqlite3, damage, topics, stamps, poses."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from bagtools import decision_tuples, image_dict, odom_dict, write_mcap_ros2, write_raw_bag

from lavpr_ros.bags.evaluate import evaluate_bag
from lavpr_ros.bags.reader import BagReadError, BagSource, choose_topic
from lavpr_ros.bags.writer import (
    bag_messages,
    folder_bag_frames,
    geodetic_to_enu,
    sidecar_path,
    write_bag,
    write_sidecar,
)
from lavpr_ros.cli.main import main as lavpr

QUIET = {"progress": False, "log": lambda s: None}


def _bag(frames, path: Path, **kw) -> Path:
    write_bag(frames, path, **kw)
    write_sidecar(path, frames, 3.0, {})
    return path


@pytest.fixture(scope="module")
def reference(nordland_frames, tmp_path_factory):
    """The rosbags-written mcap bag of the 120 Nordland frames and its offline result."""
    bag = _bag(nordland_frames, tmp_path_factory.mktemp("ref") / "nordland")
    return bag, evaluate_bag(bag, **QUIET)


def test_reference_bag_finds_the_winter_revisits(reference):
    _, res = reference
    m = res.metrics
    assert m["frames_processed"] == 120 and m["keyframes"] == 120
    assert m["positive_queries"] == 60  # every winter frame revisits a summer place
    assert m["loop_closures"] > 20 and m["precision"] >= 0.9, m
    assert 0 < m["auc_pr"] <= 1 and m["recall@1"] <= m["recall@5"]
    assert m["ground_truth"].startswith("sidecar")
    assert m["latency_ms"]["total"]["p50"] > 0


def test_mcap_ros2_writer_bag_reads_identically(reference, nordland_frames, tmp_path):
    """A bare .mcap from mcap_ros2's own CDR encoder gives exactly the same decisions."""
    from lavpr_ros.core.images import load_image

    bag, ref = reference
    msgs = []
    for f in nordland_frames:
        msgs.append(("/odom", "nav_msgs/msg/Odometry", f.stamp_ns, odom_dict(f.pose, f.stamp_ns)))
        img = image_dict(load_image(f.path), f.stamp_ns)
        msgs.append(("/camera/image_raw", "sensor_msgs/msg/Image", f.stamp_ns, img))
    other = write_mcap_ros2(tmp_path / "independent.mcap", msgs)
    res = evaluate_bag(other, gt_file=sidecar_path(bag), **QUIET)
    assert not res.source.recovered and res.metrics["damaged"] == []
    assert decision_tuples(res) == decision_tuples(ref)
    for k in ("precision", "recall", "auc_pr", "recall_at_100p", "recall@1"):
        assert res.metrics[k] == ref.metrics[k], k
    # and the rosbags CDR bytes equal the mcap_ros2 ones, message for message
    src = BagSource(other)
    ours = [bytes(raw) for *_, raw in bag_messages(nordland_frames[:3], False, "/i", "/o")]
    theirs = [raw for *_, raw in src.messages(["/odom", "/camera/image_raw"])][:6]
    assert sorted(ours) == sorted(theirs)


def test_sqlite3_and_compressed_bags_match_mcap(reference, nordland_frames, tmp_path):
    _, ref = reference
    sq = _bag(nordland_frames, tmp_path / "sq", storage="sqlite3")
    assert list(sq.glob("*.db3"))
    comp = _bag(nordland_frames, tmp_path / "comp", compressed=True)
    for bag in (sq, comp):
        res = evaluate_bag(bag, **QUIET)
        assert decision_tuples(res) == decision_tuples(ref), bag
    assert evaluate_bag(comp, **QUIET).metrics["image_type"].endswith("CompressedImage")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_keeps_results_up_to_the_damage(data_root, tmp_path, storage):
    from lavpr_ros.bags.writer import dataset_bag_frames

    # 2 x 200 frames: about 2.5 MB, several 1 MB mcap chunks (a cut chunk is lost whole)
    frames = dataset_bag_frames("nordland", None, 1000, 200)
    bag = _bag(frames, tmp_path / "cut", storage=storage)
    (f,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * 0.6)])
    res = evaluate_bag(bag, **QUIET)
    m = res.metrics
    assert m["damaged"] and str(f) in m["damaged"][0]["file"], m["damaged"]
    assert 100 < m["frames_processed"] < 400, m["frames_processed"]
    assert m["loop_closures"] > 0 or m["frames_processed"] < 230
    # the CLI names the file, keeps the report, and --strict turns it into an exit code
    out = tmp_path / "report"
    assert lavpr(["bag", "eval", str(bag), "--out", str(out), "--quiet"]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["frames_processed"] == m["frames_processed"] and saved["damaged"]
    assert lavpr(["bag", "eval", str(bag), "--out", str(out), "--quiet", "--strict"]) == 3


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "junk.mcap"
    bad.write_bytes(b"not an mcap file at all" * 10)
    with pytest.raises(BagReadError, match="junk.mcap"):
        BagSource(bad)
    assert lavpr(["bag", "eval", str(bad), "--quiet", "--out", str(tmp_path / "r")]) == 2


def test_topic_auto_detection_with_several_cameras(nordland_frames, tmp_path):
    msgs = []
    frames = nordland_frames[:5]
    for topic, comp in [
        ("/debug/overlay", False),
        ("/rear/camera/image_raw/compressed", True),
        ("/front/camera/image_raw", False),
    ]:
        msgs += [m for m in bag_messages(frames, comp, topic, "/odom") if m[0] == topic]
    bag = write_raw_bag(tmp_path / "multi", sorted(msgs, key=lambda m: m[2]))
    src = BagSource(bag)
    from lavpr_ros.bags.reader import IMAGE_TYPES

    c = choose_topic(src.topics, IMAGE_TYPES, None, "image")
    assert c.topic == "/front/camera/image_raw"  # raw beats compressed; 'image_raw' beats debug
    assert c.alternatives == ["/debug/overlay", "/rear/camera/image_raw/compressed"]
    assert choose_topic(src.topics, IMAGE_TYPES, "debug/overlay", "image").topic == (
        "/debug/overlay"
    )
    with pytest.raises(BagReadError, match="/front/camera/image_raw"):
        choose_topic(src.topics, IMAGE_TYPES, "/nope", "image")
    logs: list[str] = []
    res = evaluate_bag(
        bag, image_topic="/rear/camera/image_raw/compressed", progress=False, log=logs.append
    )
    assert res.metrics["image_type"].endswith("CompressedImage")
    assert any("other image topics" in s for s in logs)


def test_out_of_order_and_duplicate_stamps(reference, nordland_frames, tmp_path):
    _, ref = reference
    msgs = list(bag_messages(nordland_frames, False, "/camera/image_raw", "/odom"))
    images = [m for m in msgs if m[0] == "/camera/image_raw"]
    poses = [m for m in msgs if m[0] == "/odom"]
    rng = np.random.default_rng(0)
    shuffled = []
    for i in range(0, len(images), 6):  # local shuffles, like a multi-threaded recorder
        block = images[i : i + 6]
        shuffled.extend(block[j] for j in rng.permutation(len(block)))
    dups = [images[10], images[50], images[50]]
    # log times follow the storage order, as a recorder would write them
    stream = [(t, topic, mt, raw) for topic, mt, t, raw in poses]
    stream += [(images[0][2] + k, m[0], m[1], m[3]) for k, m in enumerate(shuffled + dups)]
    bag = write_raw_bag(tmp_path / "disorder", [(tp, mt, t, raw) for t, tp, mt, raw in stream])
    write_sidecar(bag, nordland_frames, 3.0, {})
    res = evaluate_bag(bag, **QUIET)
    st = res.metrics["stamps"]
    assert st["duplicates"] == 3 and st["late_dropped"] == 0 and st["out_of_order"] > 10
    assert res.metrics["frames_processed"] == 120
    assert decision_tuples(res) == decision_tuples(ref)
    # a reorder window too small to sort them: stragglers are dropped and counted, not fatal
    small = evaluate_bag(bag, reorder_window=1, **QUIET)
    assert small.metrics["stamps"]["late_dropped"] > 0
    assert small.metrics["frames_processed"] == 120 - small.metrics["stamps"]["late_dropped"]


def test_missing_poses_fall_back_to_time_keyframes(nordland_frames, tmp_path):
    msgs = list(bag_messages(nordland_frames, False, "/camera/image_raw", "/odom"))
    no_odom = write_raw_bag(tmp_path / "no_odom", [m for m in msgs if m[0] != "/odom"])
    write_sidecar(no_odom, nordland_frames, 3.0, {})
    res = evaluate_bag(no_odom, **QUIET)
    m = res.metrics
    assert m["pose_topic"] is None and m["frames_without_pose"] == 120
    assert m["keyframes"] == 120  # stamps 1 s apart = keyframe_max_interval_s
    assert m["ground_truth"].startswith("sidecar") and m["loop_closures"] > 0
    # some poses missing: those frames run without one; GT from the remaining poses
    gaps = [m for i, m in enumerate(msgs) if not (m[0] == "/odom" and i % 8 == 0)]
    part = write_raw_bag(tmp_path / "gaps", gaps)
    res2 = evaluate_bag(part, **QUIET)
    assert res2.metrics["frames_without_pose"] == 30  # every 4th odometry removed
    assert res2.metrics["ground_truth"].startswith("poses on /odom")
    assert res2.metrics["unscored"] >= 0 and math.isfinite(res2.metrics["precision"])


def test_from_images_folders_with_gps_csv(tmp_path, data_root):
    src = data_root / "corridor" / "ref"
    folder = tmp_path / "ref"
    folder.mkdir()
    for p in sorted(src.iterdir())[:6]:
        shutil.copy(p, folder / p.name)
    names = sorted(p.name for p in folder.iterdir())
    rows = ["file,stamp,lat,lon"] + [
        f"{n},{100 + i * 0.5},{59.0 + i * 1e-4},{10.0}" for i, n in enumerate(names)
    ]
    (tmp_path / "gps.csv").write_text("\n".join(rows) + "\n")
    frames = folder_bag_frames([folder], tmp_path / "gps.csv")
    assert [f.stamp_ns for f in frames][:2] == [100_000_000_000, 100_500_000_000]
    north = [f.pose[1] for f in frames]
    assert north[0] == pytest.approx(0, abs=1e-6) and north[1] == pytest.approx(11.13, abs=0.05)
    out = tmp_path / "corr"
    assert (
        lavpr(
            [
                "bag",
                "from-images",
                "--images",
                str(folder),
                "--poses",
                str(tmp_path / "gps.csv"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    side = json.loads(sidecar_path(out).read_text())
    assert len(side["frames"]) == 6 and side["frames"][1]["xyz"][1] == pytest.approx(11.13, 0.01)
    assert BagSource(out).topics["/odom"].count == 6


def test_geodetic_to_enu():
    ref = (48.0, 11.0, 500.0)
    e = geodetic_to_enu(48.0, 11.001, 500.0, ref)
    n = geodetic_to_enu(48.001, 11.0, 510.0, ref)
    assert e[0] == pytest.approx(74.6, abs=0.2) and abs(e[1]) < 0.01
    assert n[1] == pytest.approx(111.2, abs=0.2) and n[2] == pytest.approx(10.0, abs=0.01)
