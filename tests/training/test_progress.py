"""Long training-side steps show progress (feature caching, exports) when asked to."""

from __future__ import annotations

import numpy as np

from lavpr_train.progress import StepBar, encode_in_chunks


def test_chunked_encoding_shows_a_bar_and_keeps_order(monkeypatch, capsys) -> None:
    monkeypatch.setenv("LAVPR_PROGRESS", "1")
    items = list(range(10))
    out = encode_in_chunks(lambda xs: np.array(xs, np.float32)[:, None] * 2, items, "caching", 4)
    assert out[:, 0].tolist() == [2.0 * i for i in items]
    assert "caching" in capsys.readouterr().err


def test_step_bar_names_the_steps(monkeypatch, capsys) -> None:
    monkeypatch.setenv("LAVPR_PROGRESS", "1")
    step = StepBar(["build", "parity"], "export m")
    step("build")
    step("parity")
    step.close()
    err = capsys.readouterr().err
    assert "export m" in err and "2/2" in err and "parity" in err


def test_quiet_when_not_asked(monkeypatch, capsys) -> None:
    monkeypatch.setenv("LAVPR_PROGRESS", "0")
    encode_in_chunks(lambda xs: np.zeros((len(xs), 1)), [1, 2, 3], "caching")
    assert capsys.readouterr().err == ""
