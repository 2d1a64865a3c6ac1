"""Distance maps made by the data pipeline equal the ones the boundary losses compute themselves."""

import pickle

import pytest
import torch
from conftest import TINY, run_train
from test_losses import make_batch

from segtrain.data import DistanceMaps, build_dataset
from segtrain.losses import build_loss
from segtrain.losses.target_maps import sample_distance_maps

MC, BI, ML = "multiclass", "binary", "multilabel"


def batch_maps(target, mode, channels, ignore_index):
    spatial = target.shape[-2:] if mode != MC else target.shape[1:]
    return torch.stack([sample_distance_maps(t, spatial, mode, channels, ignore_index) for t in target])


@pytest.mark.parametrize(
    ("mode", "ignore_index", "include_background"),
    [(MC, None, False), (MC, 255, True), (MC, 0, False), (BI, None, False), (BI, 255, False), (ML, None, False)],
)
@pytest.mark.parametrize("name", ["boundary", "dice_boundary"])
def test_precomputed_maps_give_the_same_loss_and_gradient(name, mode, ignore_index, include_background) -> None:
    logits, target = make_batch(mode, shape=(3, 4, 9, 11), ignore_index=ignore_index, seed=3)
    kwargs = {"include_background": include_background} if name == "boundary" else {}
    if name == "dice_boundary":
        kwargs = {"boundary": {"include_background": include_background}, "boundary_weight_start": 0.5}
    loss_fn = build_loss(name, mode=mode, ignore_index=ignore_index, **kwargs)
    maps = batch_maps(target, mode, logits.shape[1], ignore_index)
    assert maps.shape == logits.shape and maps.dtype == torch.float32
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    want, got = loss_fn(a, target), loss_fn(b, target, distance=maps)
    want.backward()
    got.backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-12, atol=1e-12)


def test_combo_routes_the_maps_to_its_boundary_part_only() -> None:
    logits, target = make_batch(MC, shape=(2, 3, 8, 8), seed=4)
    loss_fn = build_loss("combo", losses=[{"name": "ce"}, {"name": "boundary", "weight": 0.5}])
    assert loss_fn.aux_inputs == ("distance",)
    maps = batch_maps(target, MC, 3, None)
    torch.testing.assert_close(loss_fn(logits, target, distance=maps), loss_fn(logits, target))


def test_wrong_maps_and_unknown_inputs_are_refused() -> None:
    logits, target = make_batch(MC, shape=(2, 3, 8, 8), seed=4)
    with pytest.raises(ValueError, match=r"maps of shape \(2, 2, 8, 8\) do not match the logits \(2, 3, 8, 8\)"):
        build_loss("boundary")(logits, target, distance=torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"Loss 'dice' got unexpected inputs \['distance'\]; it takes only logits"):
        build_loss("dice")(logits, target, distance=torch.zeros(2, 3, 8, 8))


@pytest.mark.parametrize("mode", [MC, BI, ML])
def test_wrapped_data_set_adds_maps_per_output_channel_and_pickles(mode) -> None:
    classes = {MC: 4, BI: 1, ML: 3}[mode]
    ds = build_dataset(
        "shapes", split="train", mode=mode, num_classes=classes, length={"train": 4}, image_size=32,
        class_names=None, ignore_index=None, in_channels=3,
    )
    wrapped = pickle.loads(pickle.dumps(DistanceMaps(ds)))  # what a loader worker receives
    sample = wrapped[1]
    assert sample["distance"].shape == (classes, 32, 32) and sample["distance"].dtype == torch.float32
    assert wrapped.num_classes == classes and wrapped.mode == mode and len(wrapped) == 4
    loss_fn = build_loss("boundary", mode=mode)
    logits = torch.randn(1, classes, 32, 32)
    torch.testing.assert_close(
        loss_fn(logits, sample["mask"][None], distance=sample["distance"][None]), loss_fn(logits, sample["mask"][None])
    )


def test_train_with_dice_boundary_uses_loader_maps(tmp_path) -> None:
    run = tmp_path / "run"
    run_train([*TINY, "loss=dice_boundary", "logger=none", f"hydra.run.dir={run}"], tmp_path)
    assert (run / "metrics.json").exists()
