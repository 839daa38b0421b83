"""The Docker images install only packages pinned, identically, in our requirement files."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
REQ_FILES = [
    *sorted((REPO / "requirements").glob("*.txt")),
    REPO / "training" / "requirements.txt",
    REPO / "training" / "requirements-nodeps.txt",
]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s;#]+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_lines(path: Path) -> list[str]:
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(line)
    return out


def _all_pins() -> dict[str, dict[str, str]]:
    """package -> {requirement file: version}."""
    pins: dict[str, dict[str, str]] = {}
    for path in REQ_FILES:
        if not path.is_file():
            continue
        for line in _requirement_lines(path):
            m = PIN.match(line)
            assert m, f"{path.relative_to(REPO)}: '{line}' is not pinned with =="
            pins.setdefault(_norm(m.group(1)), {})[str(path.relative_to(REPO))] = m.group(3)
    return pins


def _run_commands(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    return [line[4:] for line in text.splitlines() if line.startswith("RUN ")]


def _pip_installs(dockerfile: Path) -> tuple[list[str], list[str]]:
    """(requirement files, explicit package specs) of every pip install in a Dockerfile."""
    files, specs = [], []
    for cmd in _run_commands(dockerfile):
        for part in re.split(r"&&|;", cmd):
            words = shlex.split(part)
            if len(words) < 2 or not re.fullmatch(r"pip3?|python3? -m pip", words[0]):
                continue
            if "install" not in words:
                continue
            args = words[words.index("install") + 1 :]
            i = 0
            while i < len(args):
                a = args[i]
                if a in ("-r", "--requirement", "-c", "--constraint"):
                    files.append(args[i + 1])
                    i += 2
                    continue
                if a in ("-e", "--editable"):
                    i += 2  # the project's own package, installed from source
                    continue
                if not a.startswith("-"):
                    specs.append(a)
                i += 1
    return files, specs


def test_dockerfiles_exist() -> None:
    names = {p.name for p in DOCKERFILES}
    assert {"runtime.Dockerfile", "training.Dockerfile"} <= names


def test_requirement_files_pin_consistently() -> None:
    for name, where in _all_pins().items():
        assert len(set(where.values())) == 1, f"{name} pinned differently: {where}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_docker_pip_installs_are_pinned(dockerfile: Path) -> None:
    pins = _all_pins()
    files, specs = _pip_installs(dockerfile)
    assert files or specs, f"{dockerfile.name} installs no Python packages?"
    for f in files:
        path = REPO / f
        assert path.is_file(), f"{dockerfile.name} installs from missing {f}"
        assert path in REQ_FILES, f"{f} is not one of the project's requirement files"
    for spec in specs:
        m = PIN.match(spec)
        assert m, f"{dockerfile.name}: '{spec}' is not pinned with =="
        name = _norm(m.group(1))
        assert name in pins, f"{dockerfile.name}: {spec} is in no requirement file"
        assert m.group(3) in pins[name].values(), f"{spec} differs from {pins[name]}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_docker_copy_sources_exist(dockerfile: Path) -> None:
    for line in dockerfile.read_text().replace("\\\n", " ").splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in shlex.split(line)[1:-1]:
                assert (REPO / src).exists(), f"{dockerfile.name}: COPY source {src} missing"
