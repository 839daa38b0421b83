"""Turn an image-sequence dataset into a rosbag2 bag (``lavpr bag from-images``), without ROS.

Frames come from
- a dataset of ``$LAVPR_DATA`` (``nordland``: summer then winter; ``corridor``: ref then query),
  with the simulated route poses of :mod:`lavpr_ros.core.sequences`, exactly as the
  sequence_player publishes them (same stamps with ``--rate 1``, same poses), or
- folders of images (``--images DIR``, repeatable: traverses one after the other) with an optional
  CSV of poses or GPS, or ``--aligned`` (folders frame-aligned: frame i is the same place in each,
  posed on the simulated route).

CSV columns (header line required, extra columns ignored):
  ``file`` (name relative to its folder, or the folder-qualified ``trav/name``), optional ``stamp``
  [s], and either ``x,y[,z][,qx,qy,qz,qw]`` [m] or ``lat,lon[,alt]`` [deg, m] (WGS84; converted to
  a local east-north-up frame at the first fix; heading taken from the direction of travel).

The bag holds sensor_msgs/Image (rgb8) or CompressedImage and nav_msgs/Odometry with equal header
stamps (log time = stamp). Ground truth goes into a sidecar JSON next to the bag
(``<bag>.ground_truth.json``): per frame its stamp, file, traverse, place index and true position,
plus the radius within which a loop closure counts as correct.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .reader import typestore

GT_FORMAT = "lavpr-bag-ground-truth"


@dataclass
class BagFrame:
    path: Path
    stamp_ns: int
    traverse: str
    place_index: int
    pose: np.ndarray | None  # (x y z qx qy qz qw) published as odometry; None = no pose message
    gt_xyz: np.ndarray | None  # true position for scoring (None = unknown)
    file: str = ""


def sidecar_path(bag: str | Path) -> Path:
    bag = Path(bag)
    return bag.parent / f"{bag.name}.ground_truth.json"


def _stamp_ns(start_stamp: float, i: int, rate_hz: float) -> int:
    return round((start_stamp + i / rate_hz) * 1e9)


def dataset_bag_frames(
    dataset: str,
    traverses: list[str] | None = None,
    start: int = 0,
    count: int | None = None,
    rate_hz: float = 1.0,
    spacing_m: float = 2.0,
    start_stamp: float = 1000.0,
) -> list[BagFrame]:
    """Frames of a ``$LAVPR_DATA`` dataset, posed and stamped like the sequence_player."""
    from lavpr_ros.core.data_location import dataset_dir
    from lavpr_ros.core.sequences import DATASET_TRAVERSES, dataset_frames, route_pose

    travs = traverses or DATASET_TRAVERSES[dataset]
    root = dataset_dir(dataset)
    out = []
    for i, f in enumerate(dataset_frames(dataset, travs, start, count)):
        pose = route_pose(f.place_index, spacing_m=spacing_m)
        out.append(
            BagFrame(
                f.path,
                _stamp_ns(start_stamp, i, rate_hz),
                f.traverse,
                f.place_index,
                pose,
                pose[:3].copy(),
                str(f.path.relative_to(root)),
            )
        )
    return out


# -- folders + CSV -----------------------------------------------------------------------------
WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3


def _ecef(lat: float, lon: float, alt: float) -> np.ndarray:
    la, lo = math.radians(lat), math.radians(lon)
    n = WGS84_A / math.sqrt(1 - WGS84_E2 * math.sin(la) ** 2)
    return np.array(
        [
            (n + alt) * math.cos(la) * math.cos(lo),
            (n + alt) * math.cos(la) * math.sin(lo),
            (n * (1 - WGS84_E2) + alt) * math.sin(la),
        ]
    )


def geodetic_to_enu(lat: float, lon: float, alt: float, ref: tuple[float, float, float]):
    """East-north-up metres of a WGS84 fix relative to ``ref`` (lat, lon, alt)."""
    lat0, lon0, _ = ref
    d = _ecef(lat, lon, alt) - _ecef(*ref)
    la, lo = math.radians(lat0), math.radians(lon0)
    east = -math.sin(lo) * d[0] + math.cos(lo) * d[1]
    north = (
        -math.sin(la) * math.cos(lo) * d[0]
        - math.sin(la) * math.sin(lo) * d[1]
        + math.cos(la) * d[2]
    )
    up = (
        math.cos(la) * math.cos(lo) * d[0]
        + math.cos(la) * math.sin(lo) * d[1]
        + math.sin(la) * d[2]
    )
    return np.array([east, north, up])


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])


def read_pose_csv(path: Path) -> dict[str, dict[str, float]]:
    """Rows of a pose/GPS CSV keyed by their ``file`` column (values as floats)."""
    rows: dict[str, dict[str, float]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower() for c in reader.fieldnames or []}
        if "file" not in cols:
            raise ValueError(f"{path}: the CSV needs a 'file' column (got {sorted(cols)})")
        if not ({"x", "y"} <= cols or {"lat", "lon"} <= cols):
            raise ValueError(f"{path}: the CSV needs x,y (metres) or lat,lon (degrees) columns")
        for line, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            try:
                vals = {k: float(v) for k, v in row.items() if k != "file" and v != ""}
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: not a number: {exc}") from None
            rows[row["file"]] = vals
    return rows


def _csv_poses(rows: list[dict[str, float] | None]) -> list[np.ndarray | None]:
    """Poses for rows (None where a frame has no row); GPS converted to local ENU."""
    have = [r for r in rows if r is not None]
    if not have:
        return [None] * len(rows)
    gps = "lat" in have[0]
    ref = (have[0]["lat"], have[0]["lon"], have[0].get("alt", 0.0)) if gps else None
    xyz: list[np.ndarray | None] = []
    for r in rows:
        if r is None:
            xyz.append(None)
        elif gps:
            assert ref is not None
            xyz.append(geodetic_to_enu(r["lat"], r["lon"], r.get("alt", 0.0), ref))
        else:
            xyz.append(np.array([r["x"], r["y"], r.get("z", 0.0)]))
    out: list[np.ndarray | None] = []
    yaw = 0.0
    for i, (r, p) in enumerate(zip(rows, xyz, strict=True)):
        if r is None or p is None:
            out.append(None)
            continue
        if all(k in r for k in ("qx", "qy", "qz", "qw")):
            q = np.array([r["qx"], r["qy"], r["qz"], r["qw"]])
        else:  # heading from the direction of travel (next fix, else the previous one)
            nxt = next((x for x in xyz[i + 1 :] if x is not None), None)
            d = (nxt - p) if nxt is not None else None
            if d is not None and math.hypot(d[0], d[1]) > 1e-3:
                yaw = math.atan2(d[1], d[0])
            q = _yaw_quat(yaw)
        out.append(np.concatenate([p, q]))
    return out


def folder_bag_frames(
    folders: list[Path],
    poses_csv: Path | None = None,
    aligned: bool = False,
    start: int = 0,
    count: int | None = None,
    rate_hz: float = 1.0,
    spacing_m: float = 2.0,
    start_stamp: float = 1000.0,
) -> list[BagFrame]:
    from lavpr_ros.core.sequences import list_images, route_pose

    if poses_csv is not None and aligned:
        raise ValueError("give either a poses CSV or --aligned, not both")
    rows = read_pose_csv(poses_csv) if poses_csv else {}
    items: list[tuple[Path, str, int, dict[str, float] | None]] = []
    for folder in folders:
        files = list_images(folder)
        end = len(files) if count is None else min(len(files), start + count)
        for i in range(start, end):
            f = files[i]
            row = rows.get(f"{folder.name}/{f.name}", rows.get(f.name)) if rows else None
            items.append((f, folder.name, i, row))
    if poses_csv is not None and not any(r is not None for *_, r in items):
        raise ValueError(f"{poses_csv}: no row matches any image file name")
    csv_poses = _csv_poses([r for *_, r in items]) if poses_csv else [None] * len(items)
    out = []
    for k, ((f, trav, idx, row), cpose) in enumerate(zip(items, csv_poses, strict=True)):
        if row is not None and "stamp" in row:
            stamp = round(row["stamp"] * 1e9)
        else:
            stamp = _stamp_ns(start_stamp, k, rate_hz)
        pose = route_pose(idx, spacing_m=spacing_m) if aligned else cpose
        gt = None if pose is None else pose[:3].copy()
        out.append(BagFrame(f, stamp, trav, idx, pose, gt, f"{trav}/{f.name}"))
    return out


# -- writing -----------------------------------------------------------------------------------
def _msgs():
    return typestore().types


def _header(stamp_ns: int, frame_id: str) -> Any:
    t = _msgs()
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame_id
    )


def image_message(frame: BagFrame, compressed: bool) -> tuple[str, Any]:
    from lavpr_ros.core.images import load_image

    t = _msgs()
    header = _header(frame.stamp_ns, "camera")
    if compressed:
        suffix = frame.path.suffix.lower().lstrip(".")
        if suffix in ("png", "jpg", "jpeg"):
            data, fmt = frame.path.read_bytes(), "jpeg" if suffix == "jpg" else suffix
        else:
            import io

            from PIL import Image as PILImage

            buf = io.BytesIO()
            PILImage.fromarray(load_image(frame.path)).save(buf, format="PNG")
            data, fmt = buf.getvalue(), "png"
        msgtype = "sensor_msgs/msg/CompressedImage"
        return msgtype, t[msgtype](
            header=header, format=fmt, data=np.frombuffer(data, dtype=np.uint8)
        )
    img = load_image(frame.path)
    h, w = img.shape[:2]
    msgtype = "sensor_msgs/msg/Image"
    return msgtype, t[msgtype](
        header=header,
        height=h,
        width=w,
        encoding="rgb8",
        is_bigendian=0,
        step=w * 3,
        data=np.ascontiguousarray(img).reshape(-1),
    )


def odometry_message(stamp_ns: int, pose: np.ndarray, frame_id: str = "odom") -> Any:
    t = _msgs()
    p = [float(v) for v in pose]
    zero3 = t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    return t["nav_msgs/msg/Odometry"](
        header=_header(stamp_ns, frame_id),
        child_frame_id="base_link",
        pose=t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=p[2]),
                orientation=t["geometry_msgs/msg/Quaternion"](x=p[3], y=p[4], z=p[5], w=p[6]),
            ),
            covariance=np.zeros(36),
        ),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=zero3, angular=zero3),
            covariance=np.zeros(36),
        ),
    )


def bag_messages(
    frames: list[BagFrame], compressed: bool, image_topic: str, pose_topic: str
) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log ns, CDR bytes): the odometry first, then the image, per frame."""
    ts = typestore()
    for f in frames:
        if f.pose is not None:
            msg = odometry_message(f.stamp_ns, f.pose)
            yield (
                pose_topic,
                "nav_msgs/msg/Odometry",
                f.stamp_ns,
                ts.serialize_cdr(msg, "nav_msgs/msg/Odometry"),
            )
        msgtype, msg = image_message(f, compressed)
        yield image_topic, msgtype, f.stamp_ns, ts.serialize_cdr(msg, msgtype)


def write_bag(
    frames: list[BagFrame],
    out: str | Path,
    storage: str = "mcap",
    compressed: bool = False,
    image_topic: str | None = None,
    pose_topic: str = "/odom",
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write ``frames`` as a rosbag2 bag directory at ``out`` (mcap or sqlite3)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    out = Path(out)
    if not frames:
        raise ValueError("no frames to write")
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists (use --overwrite to replace it)")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    image_topic = image_topic or (
        "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    )
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    ts = typestore()
    conns: dict[str, Any] = {}
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        for topic, msgtype, t, raw in tqdm(
            bag_messages(frames, compressed, image_topic, pose_topic),
            total=len(frames) * 2,
            disable=not progress,
            desc="write",
            unit="msg",
        ):
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(conns[topic], t, raw)
    return out


def write_sidecar(
    bag: str | Path, frames: list[BagFrame], gt_radius_m: float, extra: dict[str, Any]
) -> Path:
    path = sidecar_path(bag)
    doc = {
        "format": GT_FORMAT,
        "version": 1,
        "bag": Path(bag).name,
        "gt_radius_m": float(gt_radius_m),
        **extra,
        "frames": [
            {
                "stamp_ns": int(f.stamp_ns),
                "file": f.file,
                "traverse": f.traverse,
                "place_index": int(f.place_index),
                "xyz": None if f.gt_xyz is None else [round(float(v), 6) for v in f.gt_xyz],
            }
            for f in frames
        ],
    }
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def default_gt_radius(dataset: str | None, spacing_m: float) -> float:
    """The radius that reproduces a dataset's own ground truth on the simulated route: places
    are ``spacing_m`` apart, so a tolerance of +-k frames is a radius of (k + 0.25) * spacing.
    Corridor's ground_truth.json gives k (its positives are +-2 frames); other data +-1 frame
    (Nordland's usual tolerance)."""
    if dataset == "corridor":
        import json

        from lavpr_ros.core.data_location import dataset_dir

        gt = json.loads((dataset_dir("corridor") / "ground_truth.json").read_text())
        k = max(abs(j - int(row["query"])) for row in gt for j in row["positives"])
        return (k + 0.25) * spacing_m
    return 1.5 * spacing_m
