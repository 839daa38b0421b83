"""One frame pipeline: the same out-of-order, pose-late stream gives the same decisions in the
real place_map node (over DDS) and in the offline core pipeline (issue #12).

Real descriptors (patch-normalised Nordland frames, summer then winter) with their route poses;
the stream is perturbed the way a robot perturbs it: every 7th descriptor is swapped with the
next one (out of order by one frame), and every pose is published *after* its descriptor, late
but within ``pose_wait_s``. The offline side pushes the same events into
``core.frame_pipeline.FramePipeline`` in the same order, with the same parameters.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from lavpr_interfaces.msg import LoopClosure, PlaceDescriptor
from nav_msgs.msg import Odometry

from lavpr_ros.core.encoders import create_encoder
from lavpr_ros.core.frame_pipeline import FramePipeline, PipelineOptions
from lavpr_ros.core.images import load_image
from lavpr_ros.core.loop_closure import LoopClosureConfig
from lavpr_ros.core.place_map import PlaceMap
from lavpr_ros.core.sequences import dataset_frames, route_pose
from lavpr_ros.nodes.convert import array_to_pose

pytestmark = [pytest.mark.ros]

COUNT, PERIOD = 60, 1.0  # frames per traverse, stamp spacing [s]
LC = {
    "loop_closure.sequence_length": 5,
    "loop_closure.exclude_recent_n": 10,
    "loop_closure.exclude_recent_s": 15.0,
    "loop_closure.min_confidence": 0.3,
    "loop_closure.keyframe_min_distance_m": 0.5,
}


def _stream(data_root) -> tuple[list[tuple[str, float, np.ndarray]], str]:
    frames = dataset_frames("nordland", ["summer", "winter"], 1000, COUNT)
    enc = create_encoder("patchnorm")
    descs = enc.encode([load_image(f.path) for f in frames])
    events: list[tuple[str, float, np.ndarray]] = []
    order = list(range(len(frames)))
    for i in range(0, len(order) - 1, 7):
        order[i], order[i + 1] = order[i + 1], order[i]  # one frame out of order
    for i in order:
        stamp = 1000.0 + i * PERIOD
        events.append(("desc", stamp, descs[i]))
        events.append(("pose", stamp, route_pose(frames[i].place_index, spacing_m=2.0)))
    return events, enc.model_id


def _offline(events, model_id: str) -> list[tuple[int, int]]:
    cfg = LoopClosureConfig(
        sequence_length=5,
        exclude_recent_n=10,
        exclude_recent_s=15.0,
        min_confidence=0.3,
        keyframe_min_distance_m=0.5,
    )
    pipe = FramePipeline(
        cfg,
        PipelineOptions(pose_wait_s=0.5, time_jump_reset_s=1.0, expected_model_id=model_id),
        place_map=PlaceMap(len(events[0][2]), model_id),
    )
    out = []
    t = 0.0
    for kind, stamp, value in events:
        t += 0.05  # arrival order only: the pose comes 0.05 s after its descriptor
        if kind == "pose":
            pipe.push_pose(stamp, value, arrived=t)
            recs = pipe.flush(t)
        else:
            recs = pipe.push_descriptor(value, stamp, model_id, arrived=t)
        for r in recs:
            d = r.result.decision if r.result else None
            if d is not None and d.accepted:
                out.append((int(d.query_id), int(d.match_id)))
    for r in pipe.flush(t + 10, force=True):
        d = r.result.decision if r.result else None
        if d is not None and d.accepted:
            out.append((int(d.query_id), int(d.match_id)))
    return out


def test_node_and_offline_pipeline_decide_alike(procs, client, data_root) -> None:
    events, model_id = _stream(data_root)
    offline = _offline(events, model_id)
    assert len(offline) >= 5  # the stream revisits places: there is something to compare

    args = ["-m", "lavpr_ros.nodes.place_map", "--ros-args"]
    params = {
        "pose_wait_s": 0.5,
        "model_id": model_id,
        "reliable_input": True,
        "verification.enabled": False,
        **LC,
    }
    for k, v in params.items():
        args += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    node = procs.start_python("pm_equiv", args)
    node.wait_for_line("[place_map] ready", timeout=60)
    closures = client.subscribe(LoopClosure, "vpr/loop_closure")
    pub = client.publisher(PlaceDescriptor, "vpr/descriptor")
    odom = client.publisher(Odometry, "odom")
    client.wait_for_subscribers(pub)
    client.wait_for_subscribers(odom)
    for kind, stamp, value in events:
        if kind == "desc":
            msg = PlaceDescriptor()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), 0
            msg.model_id, msg.dim = model_id, int(value.size)
            msg.descriptor = value.astype(np.float32).tolist()
            pub.publish(msg)
        else:
            m = Odometry()
            m.header.stamp.sec, m.header.stamp.nanosec = int(stamp), 0
            m.header.frame_id = "odom"
            m.pose.pose = array_to_pose(value)
            odom.publish(m)
        time.sleep(0.05)
    client.wait_until(lambda: len(closures) >= len(offline), 20, "the node's closures")
    time.sleep(1.0)
    online = [(int(c.query_id), int(c.match_id)) for c in closures]
    assert online == offline
    assert all(c.has_poses for c in closures)  # the late poses were waited for
