"""Read rosbag2 bags (mcap or sqlite3, directory or bare file) without ROS.

rosbags reads indexed bags; when a bag cannot be opened or breaks while being read (a recording
killed before its summary or metadata.yaml was written, a truncated copy, a corrupt chunk or page),
the messages up to the damage are still delivered (mcap: streamed record by record with the
``mcap`` package; sqlite3: row by row) and :attr:`BagSource.damage` names the file and the error.

Messages are deserialized with rosbags' typestore (ROS 2 Kilted definitions; types it lacks are
registered from the definitions stored in the bag), so offline evaluation never imports rclpy.
"""

from __future__ import annotations

import contextlib
import heapq
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
POSE_TYPES = (
    "nav_msgs/msg/Odometry",
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
)


class BagReadError(RuntimeError):
    """A bag that cannot be read at all (nothing recoverable), or a bad topic choice."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


@dataclass
class Damage:
    """Where reading stopped: the file, the error and how many messages came before it."""

    file: str
    error: str
    messages_read: int

    def describe(self) -> str:
        return (
            f"bag file {self.file} is damaged or truncated: reading stopped after "
            f"{self.messages_read} message(s): {self.error}. Results up to the damage are kept."
        )


@lru_cache(maxsize=1)
def typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    store = getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST
    return get_typestore(store)


def register_msgdef(msgtype: str, fmt: str, text: str) -> None:
    """Teach the typestore a type it lacks from the definition stored in a bag (msg or idl)."""
    ts = typestore()
    if msgtype in ts.fielddefs or not text.strip():
        return
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    types = get_types_from_idl(text) if "idl" in fmt.lower() else get_types_from_msg(text, msgtype)
    ts.register(types)


def deserialize(raw: bytes | memoryview, msgtype: str) -> Any:
    return typestore().deserialize_cdr(bytes(raw), msgtype)


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """Header stamp of a CDR message whose first field is std_msgs/Header (no full decode)."""
    b = bytes(raw[:12])
    if len(b) < 12:
        raise ValueError("message too short for a header")
    endian = "<" if b[1] & 1 else ">"  # CDR_LE/PL_CDR_LE/CDR2_LE have the low bit set
    sec, nsec = struct.unpack_from(endian + "iI", b, 4)
    return int(sec) * 1_000_000_000 + int(nsec)


def pose_from_msg(msg: Any, msgtype: str) -> np.ndarray:
    """(x, y, z, qx, qy, qz, qw) of an Odometry / PoseStamped / PoseWithCovarianceStamped."""
    pose = msg.pose if msgtype == "geometry_msgs/msg/PoseStamped" else msg.pose.pose
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)


def image_from_msg(msg: Any, msgtype: str) -> np.ndarray:
    from lavpr_ros.core.images import image_from_compressed, image_from_raw

    if msgtype == "sensor_msgs/msg/CompressedImage":
        return image_from_compressed(bytes(msg.data), msg.format)
    return image_from_raw(msg.data, msg.height, msg.width, msg.encoding, msg.step)


# -- storage access ----------------------------------------------------------------------------
def _storage_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.glob("*.mcap")) or sorted(path.glob("*.db3"))
    if not files:
        raise BagReadError(f"{path}: no .mcap or .db3 storage file in this directory")
    return files


_READ_ERRORS = (
    Exception,  # rosbags ReaderError, sqlite3.DatabaseError, zstd/lz4 errors, struct.error, ...
)


class BagSource:
    """One bag: its topics, and its messages in storage order (with damage recovery)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag not found: {self.path}")
        self.damage: Damage | None = None
        self.recovered = False  # True: rosbags could not open it; streamed record by record
        self.open_error = ""
        self.topics: dict[str, TopicInfo] = {}
        self.msgdefs: dict[str, tuple[str, str]] = {}  # msgtype -> (format, text)
        self._reader: Any = None
        try:
            self._open_rosbags()
        except Exception as exc:  # unreadable index/summary/metadata: fall back to streaming
            self.open_error = f"{type(exc).__name__}: {exc}"
            self._close_rosbags()
            self.recovered = True
            self._scan_fallback()
        self.storage = self._storage_kind()

    def _storage_kind(self) -> str:
        files = _storage_files(self.path) if self.path.is_dir() else [self.path]
        return "sqlite3" if files[0].suffix == ".db3" else "mcap"

    # rosbags (indexed) -----------------------------------------------------------------------
    def _open_rosbags(self) -> None:
        from rosbags.rosbag2 import Reader

        reader = Reader(self.path)
        reader.open()
        self._reader = reader
        counts: dict[tuple[str, str], int] = {}
        for c in reader.connections:
            counts[(c.topic, c.msgtype)] = counts.get((c.topic, c.msgtype), 0) + c.msgcount
            fmt = getattr(c.msgdef, "format", None)
            data = getattr(c.msgdef, "data", "") or ""
            if data:
                self.msgdefs.setdefault(c.msgtype, (getattr(fmt, "name", "MSG"), data))
        for (topic, msgtype), n in counts.items():
            self.topics[topic] = TopicInfo(topic, msgtype, n)

    def _close_rosbags(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
        self._reader = None

    def close(self) -> None:
        self._close_rosbags()

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # fallback (record by record) -------------------------------------------------------------
    def _scan_fallback(self) -> None:
        counts: dict[str, int] = {}
        types: dict[str, str] = {}
        for topic, _, _, _ in self._fallback_messages(None, types_out=types):
            counts[topic] = counts.get(topic, 0) + 1
        for topic, msgtype in types.items():
            self.topics[topic] = TopicInfo(topic, msgtype, counts.get(topic, 0))
        if not self.topics and self.damage is not None:
            raise BagReadError(
                f"bag {self.path} cannot be read: {self.open_error}; "
                f"streaming it failed too: {self.damage.describe()}"
            )

    def _fallback_messages(
        self, topics: set[str] | None, types_out: dict[str, str] | None = None
    ) -> Iterator[tuple[str, str, int, bytes]]:
        self.damage = None
        n = 0
        for f in _storage_files(self.path):
            gen = self._stream_db3(f) if f.suffix == ".db3" else self._stream_mcap(f, types_out)
            try:
                for topic, msgtype, t, raw in gen:
                    if types_out is not None:
                        types_out.setdefault(topic, msgtype)
                    n += 1
                    if topics is None or topic in topics:
                        yield topic, msgtype, t, raw
            except _READ_ERRORS as exc:
                self.damage = Damage(str(f), f"{type(exc).__name__}: {exc}", n)
                return

    def _stream_mcap(
        self, f: Path, types_out: dict[str, str] | None
    ) -> Iterator[tuple[str, str, int, bytes]]:
        from mcap.records import Channel, Message, Schema
        from mcap.stream_reader import StreamReader

        schemas: dict[int, Schema] = {}
        channels: dict[int, tuple[str, str]] = {}
        with f.open("rb") as fh:
            for rec in StreamReader(fh, validate_crcs=True).records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec
                elif isinstance(rec, Channel):
                    s = schemas.get(rec.schema_id)
                    name = s.name if s else "__schemaless__"
                    channels[rec.id] = (rec.topic, name)
                    if types_out is not None:
                        types_out.setdefault(rec.topic, name)
                    if s is not None and s.data:
                        self.msgdefs.setdefault(name, (s.encoding, s.data.decode()))
                elif isinstance(rec, Message) and rec.channel_id in channels:
                    topic, msgtype = channels[rec.channel_id]
                    yield topic, msgtype, rec.log_time, rec.data

    def _stream_db3(self, f: Path) -> Iterator[tuple[str, str, int, bytes]]:
        with _readable_sqlite(f) as readable:
            yield from self._rows_db3(readable)

    def _rows_db3(self, f: Path) -> Iterator[tuple[str, str, int, bytes]]:
        con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
        try:
            topics = {
                int(i): (str(name), str(t))
                for i, name, t in con.execute("SELECT id, name, type FROM topics")
            }
            with contextlib.suppress(sqlite3.Error):
                for name, fmt, text in con.execute(
                    "SELECT topic_type, encoding, encoded_message_definition "
                    "FROM message_definitions"
                ):
                    if text:
                        self.msgdefs.setdefault(str(name), (str(fmt), str(text)))
            cur = con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
            for tid, t, data in cur:
                if int(tid) in topics:
                    topic, msgtype = topics[int(tid)]
                    yield topic, msgtype, int(t), bytes(data)
        finally:
            con.close()

    # messages ----------------------------------------------------------------------------------
    def messages(self, topics: Iterable[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, log time ns, raw CDR) of ``topics`` in storage order.

        Stops quietly at damage; :attr:`damage` then says where and why.
        """
        wanted = set(topics)
        for t in wanted:
            if t not in self.topics:
                raise BagReadError(f"topic {t} is not in bag {self.path}")
        for info in (self.topics[t] for t in wanted):
            if info.msgtype in self.msgdefs:
                fmt, text = self.msgdefs[info.msgtype]
                with contextlib.suppress(Exception):
                    register_msgdef(info.msgtype, fmt, text)
        if self.recovered:
            yield from self._fallback_messages(wanted)
            return
        self.damage = None
        conns = [c for c in self._reader.connections if c.topic in wanted]
        n = 0
        it = self._reader.messages(connections=conns)
        while True:
            try:
                conn, t, raw = next(it)
            except StopIteration:
                return
            except _READ_ERRORS as exc:
                self.damage = Damage(self._damaged_file(), f"{type(exc).__name__}: {exc}", n)
                return
            n += 1
            yield conn.topic, conn.msgtype, int(t), bytes(raw)

    def _damaged_file(self) -> str:
        files = _storage_files(self.path) if self.path.is_dir() else [self.path]
        return str(files[0]) if len(files) == 1 else f"{self.path} ({len(files)} files)"


@contextlib.contextmanager
def _readable_sqlite(f: Path) -> Iterator[Path]:
    """``f``, or a patched temporary copy when ``f`` is truncated.

    SQLite refuses a file shorter than the page count in its header ("malformed") before reading
    anything; a copy cut to whole pages with the header's page count set to what is there lets it
    read every row up to the first missing page.
    """
    import shutil
    import tempfile

    with f.open("rb") as fh:
        head = fh.read(100)
    size = f.stat().st_size
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        yield f
        return
    (page_size,) = struct.unpack(">H", head[16:18])
    page_size = 65536 if page_size == 1 else page_size
    (pages,) = struct.unpack(">I", head[28:32])
    if page_size <= 0 or pages * page_size <= size:
        yield f
        return
    with tempfile.TemporaryDirectory(prefix="lavpr-bag-") as tmp:
        copy = Path(tmp) / f.name
        shutil.copyfile(f, copy)
        whole = size // page_size
        with copy.open("r+b") as fh:
            fh.truncate(whole * page_size)
            fh.seek(28)
            fh.write(struct.pack(">I", whole))
        yield copy


# -- topic choice --------------------------------------------------------------------------------
@dataclass
class TopicChoice:
    topic: str | None
    msgtype: str | None
    alternatives: list[str] = field(default_factory=list)
    reason: str = ""


def choose_topic(
    topics: dict[str, TopicInfo], kinds: tuple[str, ...], requested: str | None, what: str
) -> TopicChoice:
    """The topic of one of ``kinds`` to use: ``requested``, the only one, or the preferred one.

    Images prefer names with 'image_raw', then 'camera', then raw over compressed, then the most
    messages; poses prefer Odometry, then names with 'odom', then the most messages.
    """
    cands = [t for t in topics.values() if t.msgtype in kinds]
    if requested:
        name = requested if requested in topics else "/" + requested.lstrip("/")
        if name not in topics:
            listed = ", ".join(f"{t.name} [{t.msgtype}]" for t in cands) or "none"
            raise BagReadError(
                f"{what} topic {requested} is not in the bag; {what} topics: {listed}"
            )
        if topics[name].msgtype not in kinds:
            raise BagReadError(
                f"{what} topic {name} has type {topics[name].msgtype}, expected one of {kinds}"
            )
        others = [t.name for t in cands if t.name != name]
        return TopicChoice(name, topics[name].msgtype, others, "given on the command line")
    if not cands:
        return TopicChoice(None, None, [], f"no {what} topic ({', '.join(kinds)}) in the bag")
    if what == "image":

        def rank(t: TopicInfo) -> tuple:
            n = t.name.lower()
            return (
                "image_raw" in n,
                "camera" in n,
                t.msgtype == "sensor_msgs/msg/Image",
                t.count,
                [-ord(ch) for ch in t.name],
            )
    else:

        def rank(t: TopicInfo) -> tuple:
            n = t.name.lower()
            return (
                t.msgtype == "nav_msgs/msg/Odometry",
                "odom" in n,
                t.count,
                [-ord(ch) for ch in t.name],
            )

    best = max(cands, key=rank)
    others = sorted(t.name for t in cands if t.name != best.name)
    if not others:
        reason = f"the only {what} topic"
    else:
        reason = f"preferred among {len(cands)} {what} topics (name, type, message count)"
    return TopicChoice(best.name, best.msgtype, others, reason)


# -- stamp order -------------------------------------------------------------------------------
@dataclass
class StampStats:
    messages: int = 0
    out_of_order: int = 0  # arrived (storage order) with a stamp older than one before it
    duplicates: int = 0  # same header stamp as an earlier message of the topic: dropped
    late_dropped: int = 0  # older than frames already released (beyond the reorder window)
    zero_stamps: int = 0  # header stamp 0: the log time was used instead
    unreadable: int = 0  # header could not be parsed: dropped

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def stamp_ordered(
    items: Iterable[tuple[int, bytes]], window: int, stats: StampStats
) -> Iterator[tuple[int, int, bytes]]:
    """(stamp ns, log ns, raw) sorted by header stamp, exact-duplicate stamps dropped.

    ``items`` are (log ns, raw) in storage order. A heap of ``window`` messages reorders them, so
    any displacement shorter than the window comes out exactly sorted; older stragglers are
    dropped and counted (the detector cannot take time going backwards).
    """
    heap: list[tuple[int, int, int, bytes]] = []
    seen: set[int] = set()
    newest = None
    released = None
    seq = 0
    for log_ns, raw in items:
        stats.messages += 1
        try:
            stamp = header_stamp_ns(raw)
        except ValueError:
            stats.unreadable += 1
            continue
        if stamp == 0:
            stats.zero_stamps += 1
            stamp = int(log_ns)
        if newest is not None and stamp < newest:
            stats.out_of_order += 1
        newest = stamp if newest is None else max(newest, stamp)
        if stamp in seen:
            stats.duplicates += 1
            continue
        if released is not None and stamp < released:
            stats.late_dropped += 1
            continue
        seen.add(stamp)
        heapq.heappush(heap, (stamp, seq, int(log_ns), raw))
        seq += 1
        if len(heap) > window:
            s, _, t, r = heapq.heappop(heap)
            released = s
            yield s, t, r
    while heap:
        s, _, t, r = heapq.heappop(heap)
        yield s, t, r
