import pytest
import torch

from segtrain.data import build_dataset

NAMES = ["background", "ellipse", "rectangle", "triangle"]


def shapes(split="train", **kw):
    kw.setdefault("class_names", NAMES if kw.get("mode", "multiclass") == "multiclass" else None)
    return build_dataset("shapes", split=split, **kw)


def test_samples_are_deterministic_and_independent_of_access_order():
    a, b = shapes(), shapes()
    s1, s2 = a[5], b[5]
    assert torch.equal(s1["image"], s2["image"]) and torch.equal(s1["mask"], s2["mask"])
    b[3]  # touching another index first changes nothing
    assert torch.equal(b[5]["mask"], s1["mask"])
    assert not torch.equal(shapes(seed=1)[5]["image"], s1["image"])


def test_train_and_val_splits_differ():
    assert not torch.equal(shapes("train")[0]["image"], shapes("val")[0]["image"])


def test_sample_contract_multiclass():
    s = shapes(image_size=48)[0]
    assert s["image"].shape == (3, 48, 48) and s["image"].dtype == torch.float32
    assert s["mask"].shape == (48, 48) and s["mask"].dtype == torch.int64
    assert set(s["mask"].unique().tolist()) <= {0, 1, 2, 3}
    assert s["id"] == "shapes-train-000000"


@pytest.mark.parametrize("fraction", [0.02, 0.15, 0.3])
def test_foreground_fraction_knob_sets_the_imbalance(fraction):
    ds = shapes(foreground_fraction=fraction, length=200)
    measured = torch.stack([(ds[i]["mask"] > 0).float().mean() for i in range(200)]).mean().item()
    assert measured == pytest.approx(fraction, rel=0.3)


def test_every_shape_class_appears():
    ds = shapes(length=50)
    seen = torch.cat([ds[i]["mask"].flatten() for i in range(50)]).unique().tolist()
    assert seen == [0, 1, 2, 3]


def test_binary_and_multilabel_variants():
    mc = shapes()[2]["mask"]
    b = shapes(mode="binary", num_classes=1, class_names=["shape"])[2]["mask"]
    assert torch.equal(b, (mc > 0).long())
    ml = shapes(mode="multilabel", num_classes=3, class_names=NAMES[1:])[2]["mask"]
    assert ml.shape == (3, 64, 64) and ml.dtype == torch.float32
    # every labelled pixel of the class map is on in its channel (occluded shapes stay on in multilabel)
    for c in range(1, 4):
        assert bool(ml[c - 1][mc == c].all())


def test_bad_arguments_are_refused_with_what_was_expected():
    with pytest.raises(ValueError, match="has 4 classes, got num_classes=3"):
        shapes(num_classes=3, class_names=NAMES[:3])
    with pytest.raises(ValueError, match=r"class_names has 3 names .*num_classes=4"):
        shapes(class_names=NAMES[:3])
    with pytest.raises(ValueError, match="foreground_fraction"):
        shapes(foreground_fraction=0.9)
    with pytest.raises(ValueError, match="binary expects dataset.num_classes=1"):
        shapes(mode="binary", class_names=None)
