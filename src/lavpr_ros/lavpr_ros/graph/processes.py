"""Start node processes and always stop them: the launcher and the tests share this.

Each child runs in its own process group (so its children die with it) and, on Linux, gets
PR_SET_PDEATHSIG so that it is killed if the parent dies without cleaning up (no orphans even
when pytest or the launcher is killed).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    # A parent started in the background by a non-interactive shell ignores SIGINT, and children
    # inherit that: Ctrl-C / stop() would then never reach the nodes. Start them as a shell does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ManagedProcess:
    """A child process with its output collected line by line (kept in memory, tail bounded)."""

    name: str
    popen: subprocess.Popen[str]
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=5000))
    echo: bool = False
    _reader: threading.Thread | None = None

    def start_reader(self) -> None:
        def read() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                if self.echo:
                    print(f"[{self.name}] {line}", flush=True)

        self._reader = threading.Thread(target=read, name=f"out-{self.name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float) -> str:
        """Block until a line containing ``needle`` was printed; raise with the output otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            if not self.alive() and self._reader is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise TimeoutError(
            f"{self.name}: no line containing {needle!r} within {timeout:.0f} s "
            f"(exit code {self.popen.poll()}); output:\n{self.output()[-4000:]}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT the group (clean rclpy shutdown), then SIGTERM, then SIGKILL."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.popen.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(wait)
        # The group may hold grandchildren even after the leader exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        return self.popen.poll()


class ProcessGroup:
    """Processes started together and stopped together (in reverse start order)."""

    def __init__(self, env: Mapping[str, str] | None = None, echo: bool = False) -> None:
        self.env = dict(os.environ if env is None else env)
        self.echo = echo
        self.procs: list[ManagedProcess] = []

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> ManagedProcess:
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        popen = subprocess.Popen(
            list(cmd),
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent,
        )
        proc = ManagedProcess(name=name, popen=popen, echo=self.echo)
        proc.start_reader()
        self.procs.append(proc)
        return proc

    def start_python(
        self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        return self.start(name, [sys.executable, *args], env=env)

    def stop_all(self, timeout: float = 10.0) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for proc in reversed(self.procs):
            codes[proc.name] = proc.stop(timeout)
        return codes

    def wait_any_exit(self) -> ManagedProcess | None:
        """Block until some process exits (or KeyboardInterrupt); return it."""
        while True:
            for proc in self.procs:
                if not proc.alive():
                    return proc
            time.sleep(0.2)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


@contextlib.contextmanager
def process_group(
    env: Mapping[str, str] | None = None, echo: bool = False
) -> Iterator[ProcessGroup]:
    group = ProcessGroup(env=env, echo=echo)
    try:
        yield group
    finally:
        group.stop_all()
