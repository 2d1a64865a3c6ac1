"""segtrain's losses against the public implementations docs/losses.md maps them to (torch, torchvision,
MONAI, segmentation_models_pytorch): each test pins one mapping, in float64 where the library allows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import fresh_seed

from segtrain.losses import build_loss, soft_sums

monai_losses = pytest.importorskip("monai.losses")
smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")
tv_ops = pytest.importorskip("torchvision.ops")

MC, BI, ML = "multiclass", "binary", "multilabel"


def batch(mode: str, ignore_index: int | None = None, dtype=torch.float64, all_present=True):
    """Fresh random logits 3 x C x 9 x 10 and a target in which every class occurs (smp masks absent
    classes)."""
    gen = torch.Generator().manual_seed(fresh_seed())
    c = 1 if mode == BI else 4
    logits = (2 * torch.randn(3, c, 9, 10, generator=gen, dtype=torch.float64)).to(dtype)
    if mode == MC:
        target = torch.randint(0, c, (3, 9, 10), generator=gen)
    elif mode == BI:
        target = torch.randint(0, 2, (3, 9, 10), generator=gen)
    else:
        target = torch.randint(0, 2, (3, c, 9, 10), generator=gen)
    if ignore_index is not None:
        target = torch.where(torch.rand(target.shape, generator=gen) < 0.15, ignore_index, target)
    if all_present and mode == MC:
        target[0, 0, :c] = torch.arange(c)
    return logits, target


def monai_target(mode: str, target: torch.Tensor) -> torch.Tensor:
    t = target if mode == ML else target.unsqueeze(1)
    return t if mode == MC else t.double()


def monai_activation(mode: str) -> dict:
    return {"softmax": True, "to_onehot_y": True} if mode == MC else {"sigmoid": True}


def assert_same(ours, theirs, logits, target, rtol=1e-7, atol=1e-9, grad=True):
    x1 = logits.detach().clone().requires_grad_(True)
    x2 = logits.detach().clone().requires_grad_(True)
    a, b = ours(x1), theirs(x2)
    torch.testing.assert_close(a.to(b.dtype), b, rtol=rtol, atol=atol)
    if grad:
        a.backward()
        b.backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=max(rtol, 1e-6), atol=max(atol, 1e-9))


@pytest.mark.parametrize("mode", [MC, BI, ML])
@pytest.mark.parametrize("batch_sum", [True, False])
@pytest.mark.parametrize("opts", [{}, {"squared": True}, {"include_background": False}])
def test_dice_equals_monai_dice_loss(mode: str, batch_sum: bool, opts: dict) -> None:
    logits, target = batch(mode)
    s = 0.3
    ours = build_loss("dice", mode=mode, smooth=s, batch=batch_sum, **opts)
    theirs = monai_losses.DiceLoss(
        smooth_nr=s,
        smooth_dr=s,
        batch=batch_sum,
        squared_pred=opts.get("squared", False),
        include_background=opts.get("include_background", True),
        **monai_activation(mode),
    )
    assert_same(lambda x: ours(x, target), lambda x: theirs(x, monai_target(mode, target)), logits, target)


@pytest.mark.parametrize("mode", [MC, BI])
@pytest.mark.parametrize("ignore_index", [255, 1])
def test_dice_with_ignore_index_equals_monai_dice_loss(mode: str, ignore_index: int) -> None:
    logits, target = batch(mode, ignore_index=ignore_index)
    ours = build_loss("dice", mode=mode, ignore_index=ignore_index, batch=False)
    theirs = monai_losses.DiceLoss(smooth_nr=1e-5, smooth_dr=1e-5, ignore_index=ignore_index, **monai_activation(mode))
    assert_same(lambda x: ours(x, target), lambda x: theirs(x, monai_target(mode, target)), logits, target)


@pytest.mark.parametrize("mode", [MC, BI, ML])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_dice_equals_smp_dice_loss_with_half_the_smoothing_when_every_class_is_present(mode, ignore_index) -> None:
    if mode == ML and ignore_index is not None:
        pytest.skip("ignore_index does not apply in multilabel mode")
    logits, target = batch(mode, ignore_index=ignore_index)
    ours = build_loss("dice", mode=mode, ignore_index=ignore_index, smooth=1.0)
    theirs = smp_losses.DiceLoss(mode, smooth=0.5, ignore_index=ignore_index)
    assert_same(lambda x: ours(x, target), lambda x: theirs(x, target), logits.float(), target, 1e-5, 1e-6)


@pytest.mark.parametrize("mode", [MC, BI, ML])
def test_iou_equals_smp_jaccard_loss_and_monai_jaccard(mode: str) -> None:
    logits, target = batch(mode)
    ours = build_loss("iou", mode=mode, smooth=0.4)
    smp = smp_losses.JaccardLoss(mode, smooth=0.4)
    assert_same(lambda x: ours(x, target), lambda x: smp(x, target), logits.float(), target, 1e-5, 1e-6)
    monai = monai_losses.DiceLoss(jaccard=True, smooth_nr=0.8, smooth_dr=0.8, batch=True, **monai_activation(mode))
    assert_same(lambda x: ours(x, target), lambda x: monai(x, monai_target(mode, target)), logits, target)


@pytest.mark.parametrize("mode", [MC, BI, ML])
def test_tversky_equals_monai_and_smp_tversky_loss(mode: str) -> None:
    logits, target = batch(mode)
    ours = build_loss("tversky", mode=mode, alpha=0.3, beta=0.7, smooth=0.2, batch=True)
    monai = monai_losses.TverskyLoss(
        alpha=0.3, beta=0.7, smooth_nr=0.2, smooth_dr=0.2, batch=True, **monai_activation(mode)
    )
    assert_same(lambda x: ours(x, target), lambda x: monai(x, monai_target(mode, target)), logits, target)
    smp = smp_losses.TverskyLoss(mode, alpha=0.3, beta=0.7, smooth=0.2)
    assert_same(lambda x: ours(x, target), lambda x: smp(x, target), logits.float(), target, 1e-5, 1e-6)


def test_focal_tversky_equals_smp_gamma_with_one_class_only() -> None:
    logits, target = batch(BI)
    ours = build_loss("focal_tversky", mode=BI, alpha=0.3, beta=0.7, gamma=1.5, smooth=0.2)
    smp = smp_losses.TverskyLoss(BI, alpha=0.3, beta=0.7, gamma=1.5, smooth=0.2)
    assert_same(lambda x: ours(x, target), lambda x: smp(x, target), logits.float(), target, 1e-5, 1e-6)
    # with several classes the paper (and segtrain) raise each class's term to gamma, smp the class mean
    logits, target = batch(MC)
    tp, sum_p, sum_g = soft_sums(logits, target)
    one_minus_ti = 1 - (tp + 1e-5) / (tp + 0.5 * (sum_p - tp) + 0.5 * (sum_g - tp) + 1e-5)
    ours = build_loss("focal_tversky", gamma=1.5)(logits, target)
    theirs = smp_losses.TverskyLoss(MC, gamma=1.5, smooth=1e-5)(logits.float(), target)
    torch.testing.assert_close(ours, (one_minus_ti**1.5).mean(), rtol=1e-10, atol=0)
    torch.testing.assert_close(theirs.double(), one_minus_ti.mean() ** 1.5, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", [MC, BI, ML])
@pytest.mark.parametrize("batch_sum", [True, False])
def test_generalized_dice_equals_monai_generalized_dice_loss(mode: str, batch_sum: bool) -> None:
    logits, target = batch(mode, all_present=False)
    if mode == MC:
        target[1] = 0  # an image with absent classes: infinite weights become the largest finite one
    ours = build_loss("generalized_dice", mode=mode, smooth=0.1, batch=batch_sum)
    theirs = monai_losses.GeneralizedDiceLoss(smooth_nr=0.1, smooth_dr=0.1, batch=batch_sum, **monai_activation(mode))
    # MONAI computes the weights in float32
    assert_same(lambda x: ours(x, target), lambda x: theirs(x, monai_target(mode, target)), logits, target, 1e-6)


@pytest.mark.parametrize("alpha", [0.25, None])
def test_binary_focal_equals_torchvision_sigmoid_focal_loss_and_smp(alpha) -> None:
    logits, target = batch(BI)
    ours = build_loss("focal", mode=BI, alpha=alpha)
    tv_alpha = -1 if alpha is None else alpha
    assert_same(
        lambda x: ours(x, target),
        lambda x: tv_ops.sigmoid_focal_loss(x, target.unsqueeze(1).double(), alpha=tv_alpha, reduction="mean"),
        logits,
        target,
    )
    smp = smp_losses.FocalLoss(BI, alpha=alpha)
    assert_same(lambda x: ours(x, target), lambda x: smp(x, target), logits.float(), target, 1e-5, 1e-7)


def test_multiclass_focal_is_c_times_monai_softmax_focal_loss() -> None:
    logits, target = batch(MC)
    c = logits.shape[1]
    ours = build_loss("focal", gamma=2.0)
    theirs = monai_losses.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0)
    # MONAI's softmax focal loss computes in float32 whatever the input dtype
    assert_same(lambda x: ours(x, target), lambda x: c * theirs(x, target.unsqueeze(1)), logits, target, 1e-6)


def test_smp_multiclass_focal_is_multilabel_focal_on_the_one_hot_target() -> None:
    logits, target = batch(MC)
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)
    ours = build_loss("focal", mode=ML, alpha=None)
    smp = smp_losses.FocalLoss(MC)
    # smp averages the per-class means, which is the mean over every element
    assert_same(lambda x: ours(x, onehot), lambda x: smp(x, target), logits.float(), target, 1e-5, 1e-6)


@pytest.mark.parametrize("mode", [MC, BI])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_lovasz_equals_smp_lovasz_loss(mode: str, per_image: bool, ignore_index) -> None:
    logits, target = batch(mode, ignore_index=ignore_index)
    ours = build_loss("lovasz", mode=mode, per_image=per_image, ignore_index=ignore_index)
    smp = smp_losses.LovaszLoss(mode, per_image=per_image, ignore_index=ignore_index)
    assert_same(lambda x: ours(x, target), lambda x: smp(x, target), logits.float(), target, 1e-6, 1e-7)


def test_multilabel_lovasz_is_smp_binary_lovasz_per_channel() -> None:
    logits, target = batch(ML)
    ours = build_loss("lovasz", mode=ML)
    smp = smp_losses.LovaszLoss(BI)

    def theirs(x):
        return torch.stack([smp(x[:, c : c + 1], target[:, c]) for c in range(x.shape[1])]).mean()

    assert_same(lambda x: ours(x, target), theirs, logits.float(), target, 1e-6, 1e-7)


@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_ce_equals_torch_cross_entropy(ignore_index, label_smoothing, weighted) -> None:
    logits, target = batch(MC, ignore_index=ignore_index)
    weight = torch.tensor([0.5, 1.0, 2.0, 0.1], dtype=torch.float64) if weighted else None
    ours = build_loss(
        "ce",
        ignore_index=ignore_index,
        weight=None if weight is None else weight.tolist(),
        label_smoothing=label_smoothing,
    )
    kwargs = {"ignore_index": -100 if ignore_index is None else ignore_index, "label_smoothing": label_smoothing}
    assert_same(
        lambda x: ours(x, target), lambda x: F.cross_entropy(x, target, weight=weight, **kwargs), logits, target
    )


def test_sigmoid_ce_and_bce_equal_torch_bce_with_logits() -> None:
    logits, target = batch(ML)
    pos_weight = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64).view(4, 1, 1)
    y = target.double()
    assert_same(
        lambda x: build_loss("ce", mode=ML)(x, target),
        lambda x: F.binary_cross_entropy_with_logits(x, y),
        logits,
        target,
    )
    assert_same(
        lambda x: build_loss("bce", mode=ML, pos_weight=[1.0, 2.0, 0.5, 3.0])(x, target),
        lambda x: F.binary_cross_entropy_with_logits(x, y, pos_weight=pos_weight),
        logits,
        target,
    )


def test_weighted_ce_equals_torch_cross_entropy_with_balancing_weights() -> None:
    logits, target = batch(MC, ignore_index=255)
    kept = target[target != 255]
    counts = torch.bincount(kept, minlength=4).double()
    weight = (counts.sum() - counts) / counts.sum()
    assert_same(
        lambda x: build_loss("weighted_ce", ignore_index=255)(x, target),
        lambda x: F.cross_entropy(x, target, weight=weight, ignore_index=255),
        logits,
        target,
    )


def test_ce_dice_equals_monai_dice_ce_loss() -> None:
    # MONAI's DiceCELoss applies softmax CE to any input with several channels, even with sigmoid=True, so
    # the multilabel bce_dice (BCE per element) has no MONAI counterpart
    logits, target = batch(MC)
    theirs = monai_losses.DiceCELoss(batch=True, softmax=True, to_onehot_y=True)
    assert_same(lambda x: build_loss("ce_dice")(x, target), lambda x: theirs(x, target.unsqueeze(1)), logits, target)


def test_binary_bce_dice_equals_monai_dice_ce_loss() -> None:
    logits, target = batch(BI)
    theirs = monai_losses.DiceCELoss(batch=True, sigmoid=True)
    assert_same(
        lambda x: build_loss("bce_dice", mode=BI)(x, target),
        lambda x: theirs(x, target.unsqueeze(1).double()),
        logits,
        target,
    )


def test_binary_focal_dice_equals_monai_dice_focal_loss() -> None:
    logits, target = batch(BI)
    theirs = monai_losses.DiceFocalLoss(sigmoid=True, batch=True)
    assert_same(
        lambda x: build_loss("focal_dice", mode=BI)(x, target),
        lambda x: theirs(x, target.unsqueeze(1).double()),
        logits,
        target,
    )
