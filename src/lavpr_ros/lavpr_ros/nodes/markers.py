"""RViz markers for the place map: keyframes, loop-closure edges and place descriptions."""

from __future__ import annotations

from collections.abc import Sequence

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from lavpr_ros.core.place_map import PlaceMap


def _color(r: float, g: float, b: float, a: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=r, g=g, b=b, a=a)


def _point(p: Sequence[float]) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def build_markers(
    place_map: PlaceMap, edges: Sequence[tuple[int, int]], frame_id: str, stamp: Time
) -> MarkerArray:
    """Keyframes as a sphere list, loop closures as a line list, descriptions as text."""
    keyframes = Marker(ns="keyframes", id=0, type=Marker.SPHERE_LIST, action=Marker.ADD)
    keyframes.scale.x = keyframes.scale.y = keyframes.scale.z = 0.3
    keyframes.color = _color(0.2, 0.5, 1.0)
    lines = Marker(ns="loop_closures", id=0, type=Marker.LINE_LIST, action=Marker.ADD)
    lines.scale.x = 0.08
    lines.color = _color(1.0, 0.3, 0.1)
    out = MarkerArray()
    texts: list[Marker] = []
    for place in place_map.places:
        if place.pose is None:
            continue
        keyframes.points.append(_point(place.pose[:3]))
        if place.description:
            t = Marker(ns="descriptions", id=int(place.id), type=Marker.TEXT_VIEW_FACING)
            t.action = Marker.ADD
            t.pose.position = _point(place.pose[:3])
            t.pose.position.z += 0.6
            t.pose.orientation.w = 1.0
            t.scale.z = 0.4
            t.color = _color(1.0, 1.0, 1.0)
            t.text = f"{place.id}: {place.description[:60]}"
            texts.append(t)
    for q, m in edges:
        pq, pm = place_map.get(q).pose, place_map.get(m).pose
        if pq is not None and pm is not None:
            lines.points.extend([_point(pq[:3]), _point(pm[:3])])
    for marker in (keyframes, lines, *texts):
        marker.header.frame_id = frame_id
        marker.header.stamp = stamp
        if marker.type != Marker.TEXT_VIEW_FACING:
            marker.pose.orientation.w = 1.0
        out.markers.append(marker)
    return out
