"""The training loop on shared data (tiny config): loss goes down, CSV logs, resume, analyze,
export of the trained checkpoint (fp32 / fp16 / int8) into the runtime encoder, CLI, DDP."""

import csv
import os
import socket

import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (use training/.venv)")
pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402

from lavpr_train.paths import dataset_dir, default_mobilenet_v2_weights  # noqa: E402
from lavpr_train.train import TrainConfig, load_config, train  # noqa: E402

SIZE = [64, 64]


def _tiny(out, **kw) -> TrainConfig:
    try:
        dataset_dir("nordland")
    except FileNotFoundError:
        pytest.skip("shared data not found (set LAVPR_DATA)")
    if default_mobilenet_v2_weights() is None:
        pytest.skip("bundled MobileNetV2 weights not installed")
    base = dict(
        out=str(out),
        model={"head_dim": 32, "input_size": SIZE},
        train={"kind": "nordland", "start": 0, "stop": 120},
        val=["nordland:200:260"],
        places_per_batch=16,
        epochs=2,
        threads=1,
        progress=False,
    )
    base.update(kw)
    return load_config(None, **base)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    first = train(_tiny(out, epochs=2))
    resumed = train(_tiny(out, epochs=3, resume="auto"))
    return out, first, resumed


def test_short_run_lowers_loss(run):
    out, _first, _resumed = run
    epochs = [r for r in _rows(out / "epoch_log.csv") if r["train_loss"]]
    losses = [float(r["train_loss"]) for r in epochs]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0]


def test_csv_logs_and_checkpoints(run):
    out, _first, _ = run
    batch = _rows(out / "batch_log.csv")
    assert {"epoch", "step", "loss", "triplet", "infonce", "step_time_s", "lr"} <= set(batch[0])
    assert all(np.isfinite(float(r["loss"])) for r in batch)
    ep = _rows(out / "epoch_log.csv")
    assert ep[0]["epoch"] == "0"  # before training
    assert {"nordland[200:260]_R@1", "nordland[200:260]_R@5", "nordland[200:260]_R@10"} <= set(
        ep[0]
    )
    state = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    assert state["config"]["head_dim"] == 32 and state["train_config"]["epochs"] in (2, 3)
    assert state["best"]["R@1"] >= 0 and "metrics" in state
    assert (out / "config.yaml").is_file()


def test_resume_continues_from_checkpoint_epoch(run):
    out, first, resumed = run
    assert [h["epoch"] for h in first["history"]] == [1, 2]
    assert [h["epoch"] for h in resumed["history"]] == [3]  # not restarted at 1
    ep = [int(r["epoch"]) for r in _rows(out / "epoch_log.csv")]
    assert ep == [0, 1, 2, 3]
    steps = [int(r["global_step"]) for r in _rows(out / "batch_log.csv")]
    assert steps == list(range(1, len(steps) + 1))
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 3


def test_analyze_writes_pngs(run, tmp_path):
    from lavpr_train.analyze import analyze

    out, _, _ = run
    files = analyze(out, tmp_path)
    assert {f.name for f in files} == {"loss.png", "recall.png"}
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)


def test_export_trained_checkpoint_variants_into_runtime(run, tmp_path):
    from lavpr_train.data import preprocess
    from lavpr_train.export.image import export_image_model, sample_images
    from lavpr_train.export.variants import build_tensorrt_engine, export_fp16, export_int8
    from lavpr_train.models import VPRModel, model_config_from_dict

    encoders = pytest.importorskip("lavpr_ros.core.encoders")
    out, _, _ = run
    folder = export_image_model(tmp_path, model_id="trained", checkpoint=out / "best.pt")
    state = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    model = VPRModel(model_config_from_dict(state["config"]), weights=None)
    model.load_state_dict(state["model"])
    model.eval()
    images, _ = sample_images(4)
    with torch.no_grad():
        want = model(torch.from_numpy(preprocess(images, tuple(SIZE)))).numpy()
    tol = {"trained": 1e-4, "trained-fp16": 5e-3, "trained-int8": 0.1}
    f16 = export_fp16(folder)
    i8 = export_int8(folder, calibration_images=8)
    for f in (folder, f16, i8):
        enc = encoders.OnnxEncoder(f / "manifest.yaml", providers=["CPUExecutionProvider"])
        assert enc.model_id == f.name and enc.dim == 32
        got = enc.encode(images)
        assert got.dtype == np.float32 and np.abs(got - want).max() <= tol[f.name], f.name
    import yaml

    m = yaml.safe_load((f16 / "manifest.yaml").read_text())
    assert m["extra"]["precision"] == "fp16" and m["extra"]["derived_from"] == "trained"
    assert m["extra"]["parity_vs_fp32_max_abs_error"] <= 5e-3
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert build_tensorrt_engine(folder) is None


def test_cli_train_from_csv(tmp_path, capsys):
    from lavpr_train.cli import main

    cfg = _tiny(tmp_path)  # skips without data
    imgs = sorted((dataset_dir("nordland") / "summer").glob("*.png"))[:40]
    wint = [dataset_dir("nordland") / "winter" / p.name for p in imgs]
    lines = ["image,east,north,sequence"]
    for i, (s, w) in enumerate(zip(imgs, wint, strict=True)):
        lines += [f"{s},{i * 40.0},0,summer", f"{w},{i * 40.0},0,winter"]
    (tmp_path / "train.csv").write_text("\n".join(lines))
    import yaml

    (tmp_path / "cfg.yaml").write_text(
        yaml.safe_dump({"model": cfg.model, "val": [], "places_per_batch": 8})
    )
    rc = main(
        [
            "train",
            "--config",
            str(tmp_path / "cfg.yaml"),
            "--out",
            str(tmp_path / "r"),
            "--train-csv",
            str(tmp_path / "train.csv"),
            "--epochs",
            "1",
            "--threads",
            "1",
            "--no-progress",
            "--aggregator",
            "mixvpr",
        ]
    )
    assert rc == 0
    assert (tmp_path / "r" / "best.pt").is_file() and (tmp_path / "r" / "batch_log.csv").is_file()
    assert main(["analyze", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "loss.png").is_file()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cfg_dict):
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    train(TrainConfig(**cfg_dict))


@pytest.mark.timeout(120)
def test_ddp_two_process_gloo(tmp_path):
    from dataclasses import asdict

    import torch.multiprocessing as mp

    cfg = _tiny(tmp_path / "ddp", epochs=1, steps_per_epoch=2, hard_negatives=True)
    mp.spawn(_ddp_worker, args=(2, _free_port(), asdict(cfg)), nprocs=2, join=True)
    rows = _rows(tmp_path / "ddp" / "batch_log.csv")
    assert len(rows) == 2  # rank 0 logs its own 2 steps; rank 1 ran the other 2
    assert (tmp_path / "ddp" / "best.pt").is_file()
