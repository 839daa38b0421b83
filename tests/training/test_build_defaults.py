import pytest

pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")

from lavpr_train.cli import main


def test_build_defaults_skips_present_models(tmp_path, capsys):
    for model_id in ("mobilenetv2-gem-imagenet", "minilm-l6-v2"):
        (tmp_path / model_id).mkdir()
        (tmp_path / model_id / "manifest.yaml").write_text("model_id: x\n")
    assert main(["build-defaults", "--out", str(tmp_path)]) == 0
    assert "already present" in capsys.readouterr().out


def test_cli_reports_missing_weights(tmp_path, capsys):
    code = main(["export-image", "--out", str(tmp_path), "--weights", str(tmp_path / "no.pth")])
    assert code == 1
    assert "not found" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing half-written
