"""segtrain.inference: rebuilding from a checkpoint, TTA, sliding windows, evaluation, prediction, export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from segtrain.data import build_dataset, build_loader
from segtrain.engine import save_checkpoint
from segtrain.inference import (
    compare_exported,
    dice_distribution,
    evaluate,
    export_onnx,
    export_torchscript,
    find_images,
    model_from_checkpoint,
    predict_files,
    predict_logits,
    resolve_checkpoint,
    training_size,
)
from segtrain.metrics import SegMetrics
from segtrain.models import build_model

ROOT = Path(__file__).resolve().parents[1]


def shapes_config(**dataset_changes) -> dict:
    """The training config a checkpoint stores (model + dataset sections), from the real config files."""
    ds = yaml.safe_load((ROOT / "configs/dataset/shapes.yaml").read_text())
    ds.update(length={"train": 8, "val": 6, "test": 6}, image_size=32, loader={"batch_size": 4, "num_workers": 0})
    ds.update(dataset_changes)
    model = yaml.safe_load((ROOT / "configs/model/unet.yaml").read_text())
    model.update(in_channels=ds["in_channels"], classes=ds["num_classes"])  # the ${dataset.*} interpolations
    return {"model": model, "dataset": ds, "seed": 0}


def write_checkpoint(path: Path, config: dict, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    kwargs = {k: v for k, v in config["model"].items() if k not in ("name", "encoder_weights")}
    model = build_model(config["model"]["name"], **kwargs).eval()
    run_info = {"model": "unet", "dataset": config["dataset"]["name"], "loss": "ce_dice", "seed": 0}
    save_checkpoint({"model": model.state_dict(), "config": config, "run_info": run_info, "epoch": 1}, path)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, nn.Module, dict]:
    config = shapes_config()
    path = tmp_path_factory.mktemp("run") / "checkpoints" / "best.pt"
    return path, write_checkpoint(path, config), config


def val_loader(config: dict, n: int = 6):
    ds = {k: v for k, v in config["dataset"].items() if k not in ("name", "loader", "test_split")}
    ds["length"] = {"val": n}
    return build_loader(build_dataset("shapes", "val", **ds), batch_size=4)


# ------------------------------------------------------------------ checkpoint
def test_model_from_checkpoint_gives_the_saved_models_logits(trained):
    path, model, config = trained
    rebuilt, stored = model_from_checkpoint(path)
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert stored["dataset"]["name"] == "shapes" and not rebuilt.training


def test_a_run_directory_resolves_to_its_best_checkpoint(trained):
    path = trained[0]
    assert resolve_checkpoint(path.parent.parent) == path


def test_pretrained_encoder_weights_in_the_config_are_not_downloaded(tmp_path):
    config = shapes_config()
    config["model"]["encoder_weights"] = "imagenet"  # would need a network; the checkpoint holds the weights
    write_checkpoint(tmp_path / "ckpt.pt", config)
    model, _ = model_from_checkpoint(tmp_path / "ckpt.pt")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4, 32, 32)


def test_truncated_checkpoint_gives_a_clear_error(trained, tmp_path):
    data = trained[0].read_bytes()
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.pt cannot be read .*truncated"):
        model_from_checkpoint(bad)


def test_missing_checkpoint_and_one_without_config_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint=.*nope\.pt does not exist"):
        model_from_checkpoint(tmp_path / "nope.pt")
    save_checkpoint({"model": {}}, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match=r"bare\.pt has no 'config' with a 'model' section"):
        model_from_checkpoint(tmp_path / "bare.pt")


def test_weights_that_do_not_fit_the_stored_config_are_refused(trained, tmp_path):
    _, model, config = trained
    other = {**config, "model": {**config["model"], "classes": 2}}
    save_checkpoint({"model": model.state_dict(), "config": other}, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="do not fit model 'unet'"):
        model_from_checkpoint(tmp_path / "mismatch.pt")


def test_training_size_from_image_size_or_the_training_crop():
    assert training_size(shapes_config()) == 32
    folder = yaml.safe_load((ROOT / "configs/dataset/folder.yaml").read_text())
    assert training_size({"dataset": folder}) == 256
    assert training_size({"dataset": {"name": "x"}}) is None


# ------------------------------------------------------------------ TTA and sliding windows
def test_tta_predictions_are_flip_equivariant_for_any_model():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 3, padding=1).eval()  # a random 3x3 kernel: not flip-equivariant itself
    x = torch.randn(2, 3, 32, 32)
    tta = predict_logits(model, x, tta=True)
    for dims in ((3,), (2,)):
        assert not torch.allclose(model(x.flip(dims)).flip(dims), model(x), atol=1e-3)
        torch.testing.assert_close(predict_logits(model, x.flip(dims), tta=True).flip(dims), tta, atol=1e-6, rtol=0)
    views = [model(x.flip(d)).flip(d) if d else model(x) for d in ((), (3,), (2,), (2, 3))]
    torch.testing.assert_close(tta, torch.stack(views).mean(0).detach(), atol=1e-6, rtol=0)


def test_tta_leaves_a_flip_equivariant_model_unchanged():
    model = nn.Conv2d(3, 4, 1).eval()  # pointwise: flip-equivariant
    x = torch.randn(1, 3, 64, 96)
    torch.testing.assert_close(predict_logits(model, x, tta=True), predict_logits(model, x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("blend", ["gaussian", "uniform"])
def test_sliding_window_equals_one_pass_for_a_pointwise_model(blend):
    model = nn.Conv2d(3, 4, 1).eval()
    x = torch.randn(2, 3, 100, 150)
    tiled = predict_logits(model, x, window=32, overlap=0.25, blend=blend)
    torch.testing.assert_close(tiled, predict_logits(model, x), atol=1e-5, rtol=1e-5)


def test_sliding_window_covering_the_image_equals_the_plain_forward(trained):
    model = trained[1]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
    torch.testing.assert_close(predict_logits(model, x, window=64), plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(predict_logits(model, x, window=128), plain, atol=1e-5, rtol=0)


def test_sliding_window_and_padding_keep_the_input_size(trained):
    model = trained[1]
    for shape, window in (((2, 3, 80, 130), 64), ((1, 3, 40, 200), 96), ((1, 3, 50, 70), None)):
        out = predict_logits(model, torch.randn(*shape), window=window, tta=window == 96)
        assert out.shape == (shape[0], 4, *shape[2:]) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="window=50 must be a positive multiple of 32"):
        predict_logits(model, torch.randn(1, 3, 64, 64), window=50)


# ------------------------------------------------------------------ evaluation
def test_evaluate_equals_segmetrics_computed_directly(trained):
    _, model, config = trained
    names = config["dataset"]["class_names"]
    result = evaluate(model, val_loader(config), "multiclass", 4, None, names)
    reference = SegMetrics(4, "multiclass", None, names)
    with torch.no_grad():
        for batch in val_loader(config):
            reference.update(model(batch["image"]), batch["mask"])
    expected = reference.compute()
    for key in ("dice", "iou", "dice_per_image"):
        assert result[key] == pytest.approx(expected[key], nan_ok=True)
    for c in names:
        assert result["per_class"]["dice"][c] == pytest.approx(expected[f"dice/{c}"], nan_ok=True)
        assert result["per_class"]["iou"][c] == pytest.approx(expected[f"iou/{c}"], nan_ok=True)
    per_image = [r["dice"] for r in result["per_image"]]
    assert len(per_image) == result["num_images"] == 6
    defined = [d for d in per_image if not math.isnan(d)]
    assert defined and np.mean(defined) == pytest.approx(expected["dice_per_image"])  # the list SegMetrics averages
    dist = result["per_image_dice"]
    assert dist["count"] + dist["undefined"] == 6 and sum(dist["histogram"]["counts"]) == dist["count"]


def test_dice_distribution_statistics():
    dist = dice_distribution([0.0, 0.5, 1.0, math.nan, 0.25], bins=4)
    assert (dist["count"], dist["undefined"]) == (4, 1)
    assert dist["mean"] == pytest.approx(0.4375) and dist["median"] == pytest.approx(0.375)
    assert dist["p10"] == pytest.approx(0.075) and dist["p90"] == pytest.approx(0.85)
    assert dist["histogram"] == {"bin_edges": [0.0, 0.25, 0.5, 0.75, 1.0], "counts": [1, 1, 1, 1]}


# ------------------------------------------------------------------ prediction
def test_predict_writes_class_index_masks_of_each_images_size(trained, tmp_path):
    _, model, config = trained
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (70, 90), dtype=np.uint8)).save(tmp_path / "b.jpg")  # gray -> RGB
    ds = config["dataset"]
    written = predict_files(
        model, find_images(tmp_path), tmp_path / "out", "multiclass", 3, ds["normalize"], ds["class_names"], window=32
    )
    assert [w["id"] for w in written] == ["a", "b"]
    for sid, (h, w) in (("a", (40, 50)), ("b", (70, 90))):
        mask = np.asarray(Image.open(tmp_path / "out" / f"{sid}.png"))
        assert mask.shape == (h, w) and mask.dtype == np.uint8 and mask.max() < 4
        over = Image.open(tmp_path / "out" / f"{sid}_overlay.png")
        assert over.mode == "RGB" and over.size == (w, h)


def test_predict_binary_masks_are_0_or_1_and_multilabel_writes_one_mask_per_channel(tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (33, 47, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    torch.manual_seed(0)
    predict_files(nn.Conv2d(3, 1, 1), [tmp_path / "x.png"], tmp_path / "bin", "binary", 3)
    assert set(np.unique(np.asarray(Image.open(tmp_path / "bin" / "x.png")))) <= {0, 1}
    predict_files(nn.Conv2d(3, 2, 1), [tmp_path / "x.png"], tmp_path / "ml", "multilabel", 3, class_names=["u", "v"])
    for name in ("x_u.png", "x_v.png", "x_overlay.png"):
        assert Image.open(tmp_path / "ml" / name).size == (47, 33)


def test_predict_input_errors_name_the_file_or_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"input folder .*empty has no images"):
        find_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_images(tmp_path / "missing")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"rgb\.png has 3 channels but dataset.in_channels=1"):
        predict_files(nn.Conv2d(1, 2, 1), [tmp_path / "rgb.png"], tmp_path / "o", "multiclass", 1)


# ------------------------------------------------------------------ export
def test_onnx_export_runs_in_onnxruntime_and_matches_pytorch(trained, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = trained[1]
    path = export_onnx(model, tmp_path / "m.onnx", size=64, opset=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 64, 96)  # batch, height and width differ from the traced example
    (out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), atol=1e-4, rtol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_trace_matches_pytorch(trained, tmp_path):
    model = trained[1]
    path = export_torchscript(model, tmp_path / "m.pt", size=64)
    loaded = torch.jit.load(str(path))
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)
    assert compare_exported(model, path, size=(32, 64)) < 1e-5
