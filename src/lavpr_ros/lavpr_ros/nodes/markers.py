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
    place_map: PlaceMap, edges: Sequence[tuple[int, int]], stamp: Time
) -> MarkerArray:
    """Keyframes as sphere lists, loop closures as line lists, descriptions as text, each in
    the frame its places were recorded in (one sphere/line list per frame; an edge between
    places of two frames is not drawn: their coordinates are not comparable)."""
    frames = list(dict.fromkeys(p.frame_id for p in place_map.places if p.pose is not None))
    keyframes: dict[str, Marker] = {}
    lines: dict[str, Marker] = {}
    for i, frame in enumerate(frames):
        k = Marker(ns="keyframes", id=i, type=Marker.SPHERE_LIST, action=Marker.ADD)
        k.scale.x = k.scale.y = k.scale.z = 0.3
        k.color = _color(0.2, 0.5, 1.0)
        ln = Marker(ns="loop_closures", id=i, type=Marker.LINE_LIST, action=Marker.ADD)
        ln.scale.x = 0.08
        ln.color = _color(1.0, 0.3, 0.1)
        k.header.frame_id = ln.header.frame_id = frame
        keyframes[frame], lines[frame] = k, ln
    out = MarkerArray()
    texts: list[Marker] = []
    for place in place_map.places:
        if place.pose is None:
            continue
        keyframes[place.frame_id].points.append(_point(place.pose[:3]))
        if place.description:
            t = Marker(ns="descriptions", id=int(place.id), type=Marker.TEXT_VIEW_FACING)
            t.action = Marker.ADD
            t.header.frame_id = place.frame_id
            t.pose.position = _point(place.pose[:3])
            t.pose.position.z += 0.6
            t.pose.orientation.w = 1.0
            t.scale.z = 0.4
            t.color = _color(1.0, 1.0, 1.0)
            t.text = f"{place.id}: {place.description[:60]}"
            texts.append(t)
    for q, m in edges:
        pq, pm = place_map.get(q), place_map.get(m)
        if pq.pose is not None and pm.pose is not None and pq.frame_id == pm.frame_id:
            lines[pq.frame_id].points.extend([_point(pq.pose[:3]), _point(pm.pose[:3])])
    for marker in (*keyframes.values(), *lines.values(), *texts):
        marker.header.stamp = stamp
        if marker.type != Marker.TEXT_VIEW_FACING:
            marker.pose.orientation.w = 1.0
        out.markers.append(marker)
    return out
