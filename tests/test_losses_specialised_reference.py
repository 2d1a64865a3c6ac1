"""The specialised losses against their public twins, each mapping stated in the test: MONAI (SoftclDiceLoss,
SoftDiceclDiceLoss, HausdorffDTLoss, AsymmetricUnifiedFocalLoss, AsymmetricFocalTverskyLoss, MCCLoss), smp
(MCCLoss), and, as they are not installed, nnU-Net's TopKLoss / DC_and_topk_loss, mmseg's OHEMPixelSampler with
its CrossEntropyLoss and Skeleton Recall's SoftSkeletonRecallLoss / SkeletonTransform written out from their
source (nnunetv2 robust_ce_loss.py and dice.py, mmseg structures/sampler/ohem_pixel_sampler.py,
MIC-DKFZ/Skeleton-Recall)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.morphology import dilation, skeletonize
from test_losses_specialised import BI, MC, ML, batch, grad_of

from segtrain.losses import build_loss

monai_losses = pytest.importorskip("monai.losses")
smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")
monai_unified_focal = pytest.importorskip("monai.losses.unified_focal_loss")


def assert_same(ours, theirs, logits, rtol=1e-5, atol=1e-8, grad_rtol=1e-4):
    v1, g1 = grad_of(ours, logits)
    v2, g2 = grad_of(theirs, logits)
    torch.testing.assert_close(v1, v2.to(v1.dtype), rtol=rtol, atol=atol)
    torch.testing.assert_close(g1, g2.to(g1.dtype), rtol=grad_rtol, atol=max(atol, 1e-9))


def channel_target(mode, target):
    return (target.unsqueeze(1) if mode != ML else target).double()


# --------------------------------------------------------------------------- nnU-Net (from source)


def nnunet_topk(x, y, k, ignore_index=-100):
    """nnunetv2 TopKLoss.forward: CE with reduction none (ignore_index -> 0), topk of int(numel k / 100)."""
    res = F.cross_entropy(x, y, ignore_index=ignore_index, reduction="none")
    num_voxels = np.prod(res.shape, dtype=np.int64)
    res, _ = torch.topk(res.view((-1,)), int(num_voxels * k / 100), sorted=False)
    return res.mean()


def nnunet_soft_dice(x, y, batch_dice, do_bg, smooth):
    """nnunetv2 SoftDiceLoss(softmax, batch_dice, do_bg, smooth) without loss mask: returns -dc."""
    axes = [0, 2, 3] if batch_dice else [2, 3]
    x = x.softmax(1)
    y_onehot = torch.zeros_like(x).scatter_(1, y.unsqueeze(1), 1)
    tp = (x * y_onehot).sum(axes)
    fp = (x * (1 - y_onehot)).sum(axes)
    fn = ((1 - x) * y_onehot).sum(axes)
    dc = (2 * tp + smooth) / torch.clip(2 * tp + fp + fn + smooth, 1e-8)
    if not do_bg:
        dc = dc[1:] if batch_dice else dc[:, 1:]
    return -dc.mean()


@pytest.mark.parametrize("k", [10, 33.3, 100])
def test_topk_equals_nnunet_topk_loss(k: float) -> None:
    logits, target = batch(MC)
    ours = build_loss("topk", mode=MC, k=k)
    assert_same(lambda x: ours(x, target), lambda x: nnunet_topk(x, target, k), logits)


def test_topk_with_ignored_pixels_equals_nnunet_on_the_kept_pixels_alone() -> None:
    logits, target = batch(MC, ignore_index=255)
    keep = target != 255
    ours = build_loss("topk", mode=MC, ignore_index=255, k=10)
    # nnU-Net on the kept pixels alone: one "image" of the kept pixels, as N x C x n x 1
    assert_same(
        lambda x: ours(x, target),
        lambda x: nnunet_topk(x.movedim(1, -1)[keep].T.unsqueeze(0).unsqueeze(-1), target[keep].view(1, -1, 1), 10),
        logits,
    )


@pytest.mark.parametrize(("batch_dice", "do_bg"), [(True, True), (False, False)])
def test_dice_topk_equals_nnunet_dc_and_topk_loss_plus_w0(batch_dice: bool, do_bg: bool) -> None:
    logits, target = batch(MC)
    w0, w1, s, k = 0.7, 1.3, 0.5, 20
    ours = build_loss(
        "dice_topk",
        mode=MC,
        weights=[w0, w1],
        dice={"batch": batch_dice, "smooth": s, "include_background": do_bg},
        topk={"k": k},
    )

    def theirs(x):  # DC_and_topk_loss.forward without ignore label: weight_ce * topk + weight_dice * (-dc)
        return w1 * nnunet_topk(x, target, k) + w0 * nnunet_soft_dice(x, target, batch_dice, do_bg, s) + w0

    assert_same(lambda x: ours(x, target), theirs, logits)


# --------------------------------------------------------------------------- mmseg OHEM (from source)


def mmseg_ohem_weight(seg_logit, seg_label, thresh, min_kept, ignore_index):
    """mmseg OHEMPixelSampler.sample with thresh (segmentation weight N x H x W in {0, 1})."""
    with torch.no_grad():
        batch_kept = min_kept * seg_label.size(0)
        valid_mask = seg_label != ignore_index
        seg_weight = seg_logit.new_zeros(size=seg_label.size())
        valid_seg_weight = seg_weight[valid_mask]
        seg_prob = F.softmax(seg_logit, dim=1)
        tmp = seg_label.clone().unsqueeze(1)
        tmp[tmp == ignore_index] = 0
        seg_prob = seg_prob.gather(1, tmp).squeeze(1)
        sort_prob, _ = seg_prob[valid_mask].sort()
        min_threshold = sort_prob[min(batch_kept, sort_prob.numel() - 1)] if sort_prob.numel() > 0 else 0.0
        threshold = max(min_threshold, thresh)
        valid_seg_weight[seg_prob[valid_mask] < threshold] = 1.0
        seg_weight[valid_mask] = valid_seg_weight
        return seg_weight


@pytest.mark.parametrize(("thresh", "min_kept", "ignore_index"), [(0.7, 30, None), (0.2, 50, 255), (0.9, 5, 255)])
def test_ohem_ce_equals_mmseg_ohem_times_pixels_over_kept(thresh: float, min_kept: int, ignore_index) -> None:
    logits, target = batch(MC, ignore_index)
    ours = build_loss("ohem_ce", mode=MC, ignore_index=ignore_index, thresh=thresh, min_kept=min_kept)
    ii = -100 if ignore_index is None else ignore_index
    weight = mmseg_ohem_weight(logits, target, thresh, min_kept, ii)
    assert min_kept * target.shape[0] < int((target != ii).sum())  # the mapping's condition

    def theirs(x):  # mmseg CrossEntropyLoss: sum of weighted CE / all N S pixels; segtrain = that x N S / n_kept
        ce = F.cross_entropy(x, target, ignore_index=ii, reduction="none")
        mmseg = (ce * weight).sum() / target.numel()
        return mmseg * target.numel() / weight.sum()

    assert_same(lambda x: ours(x, target), theirs, logits)


# --------------------------------------------------------------------------- clDice (MONAI)


@pytest.mark.parametrize("iterations", [0, 3])
def test_binary_cldice_per_image_equals_monai_soft_cldice(iterations: int) -> None:
    logits, target = batch(BI)
    s = 0.7
    ours = build_loss("cldice", mode=BI, iterations=iterations, smooth=s, batch=False)
    theirs = monai_losses.SoftclDiceLoss(iter_=iterations, smooth_nr=s, smooth_dr=s, smooth=1e-30, sigmoid=True)
    assert_same(lambda x: ours(x, target), lambda x: theirs(x, channel_target(BI, target)), logits)


def test_multilabel_cldice_is_the_mean_of_monai_on_each_channel_alone() -> None:
    logits, target = batch(ML)
    ours = build_loss("cldice", mode=ML, batch=False)
    theirs = monai_losses.SoftclDiceLoss(iter_=3, smooth_nr=1.0, smooth_dr=1.0, smooth=1e-30, sigmoid=True)
    t = channel_target(ML, target)

    def per_channel(x):
        return torch.stack([theirs(x[:, [c]], t[:, [c]]) for c in range(x.shape[1])]).mean()

    assert_same(lambda x: ours(x, target), per_channel, logits)


def test_binary_cldice_equals_monai_with_its_default_harmonic_smoothing_to_5e_5() -> None:
    logits, target = batch(BI)
    ours = build_loss("cldice", mode=BI, batch=False)(logits, target)
    theirs = monai_losses.SoftclDiceLoss(sigmoid=True)(logits, channel_target(BI, target))
    assert abs(float(ours) - float(theirs)) < 5e-5


def test_binary_dice_cldice_equals_monai_soft_dice_cldice() -> None:
    logits, target = batch(BI)
    s, alpha = 0.4, 0.3
    ours = build_loss(
        "dice_cldice", mode=BI, alpha=alpha, dice={"smooth": s, "batch": False}, cldice={"smooth": s, "batch": False}
    )
    theirs = monai_losses.SoftDiceclDiceLoss(alpha=alpha, smooth_nr=s, smooth_dr=s, smooth=1e-30, sigmoid=True)
    assert_same(lambda x: ours(x, target), lambda x: theirs(x, channel_target(BI, target)), logits)


# --------------------------------------------------------------------------- Skeleton Recall (from source)


def skeleton_transform(seg):
    """Skeleton-Recall SkeletonTransform(do_tube=True) on one H x W label map: skeleton of seg > 0, dilated
    twice, times the labels."""
    bin_seg = seg > 0
    out = np.zeros_like(seg, dtype=np.int16)
    if bin_seg.sum() != 0:
        skel = (skeletonize(bin_seg) > 0).astype(np.int16)
        skel = dilation(dilation(skel))
        out = skel * seg.astype(np.int16)
    return out


def soft_skeleton_recall(x, y, batch_dice, smooth, loss_mask=None):
    """Skeleton-Recall SoftSkeletonRecallLoss(softmax, batch_dice, do_bg=False, smooth).forward: -recall."""
    x = x.softmax(1)[:, 1:]
    axes = [2, 3]
    y_onehot = torch.zeros(x.shape[0], x.shape[1] + 1, *x.shape[2:], dtype=x.dtype).scatter_(1, y.unsqueeze(1), 1)
    y_onehot = y_onehot[:, 1:]
    sum_gt = y_onehot.sum(axes) if loss_mask is None else (y_onehot * loss_mask).sum(axes)
    inter_rec = (x * y_onehot).sum(axes) if loss_mask is None else (x * y_onehot * loss_mask).sum(axes)
    if batch_dice:
        inter_rec, sum_gt = inter_rec.sum(0), sum_gt.sum(0)
    rec = (inter_rec + smooth) / torch.clip(sum_gt + smooth, 1e-8)
    return -rec.mean()


@pytest.mark.parametrize("batch_sum", [True, False])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_skeleton_recall_equals_one_plus_skeleton_recalls_loss(batch_sum: bool, ignore_index) -> None:
    logits, target = batch(MC, ignore_index)
    s = 1e-3
    ours = build_loss("skeleton_recall", mode=MC, ignore_index=ignore_index, smooth=s, batch=batch_sum)
    labels = target if ignore_index is None else torch.where(target == ignore_index, 0, target)
    skel = torch.from_numpy(np.stack([skeleton_transform(t) for t in labels.numpy()])).long()
    mask = None if ignore_index is None else (target != ignore_index).unsqueeze(1).double()
    assert_same(lambda x: ours(x, target), lambda x: 1 + soft_skeleton_recall(x, skel, batch_sum, s, mask), logits)


# --------------------------------------------------------------------------- Hausdorff DT (MONAI)


@pytest.mark.parametrize("mode", [MC, BI, ML])
@pytest.mark.parametrize(("alpha", "include_background"), [(2.0, True), (1.3, False)])
def test_hausdorff_dt_equals_monai_hausdorff_dt_loss(mode: str, alpha: float, include_background: bool) -> None:
    logits, target = batch(mode)
    ours = build_loss("hausdorff_dt", mode=mode, alpha=alpha, include_background=include_background)
    act = {"softmax": True, "to_onehot_y": True} if mode == MC else {"sigmoid": True}
    t = target.unsqueeze(1) if mode == MC else channel_target(mode, target)
    for flag in (False, True):  # MONAI's batch flag does not change the value
        theirs = monai_losses.HausdorffDTLoss(alpha=alpha, include_background=include_background, batch=flag, **act)
        assert_same(lambda x: ours(x, target), lambda x, fn=theirs: fn(x, t), logits)


# --------------------------------------------------------------------------- unified focal (MONAI)


@pytest.mark.parametrize(("w", "delta", "gamma"), [(0.5, 0.6, 0.5), (0.3, 0.7, 0.2)])
def test_binary_asym_unified_focal_equals_scaled_monai_asymmetric_unified_focal(w, delta, gamma) -> None:
    logits, target = batch(BI)
    ours = build_loss("asym_unified_focal", mode=BI, weight=w, delta=delta, gamma=gamma, batch=False)
    theirs = monai_losses.AsymmetricUnifiedFocalLoss(weight=2 * w / (1 + w), delta=delta, gamma=gamma)
    t = channel_target(BI, target)
    assert_same(lambda x: ours(x, target), lambda x: (1 + w) * theirs(torch.sigmoid(x), t), logits)


def test_binary_asym_focal_tversky_part_equals_monai_asymmetric_focal_tversky() -> None:
    logits, target = batch(BI)
    ours = build_loss("asym_unified_focal", mode=BI, weight=0.0, delta=0.7, gamma=0.4, batch=False)
    theirs = monai_unified_focal.AsymmetricFocalTverskyLoss(delta=0.7, gamma=0.4)
    t = channel_target(BI, target)
    assert_same(
        lambda x: ours(x, target),
        lambda x: theirs(torch.cat([1 - x.sigmoid(), x.sigmoid()], 1), torch.cat([1 - t, t], 1)),
        logits,
    )


# --------------------------------------------------------------------------- MCC (smp, MONAI)


def test_binary_mcc_equals_smp_mcc_loss() -> None:
    logits, target = batch(BI)
    s = 1e-3
    ours = build_loss("mcc", mode=BI, smooth=s)
    theirs = smp_losses.MCCLoss(eps=s)
    assert_same(lambda x: ours(x, target), lambda x: theirs(torch.sigmoid(x), channel_target(BI, target)), logits)


@pytest.mark.parametrize("mode", [MC, BI, ML])
@pytest.mark.parametrize("batch_sum", [True, False])
def test_mcc_equals_monai_mcc_loss_to_1e_6(mode: str, batch_sum: bool) -> None:
    logits, target = batch(mode)
    if mode == MC:  # every class in every image (the smoothings differ most on an absent class)
        target[:, 0, :4] = torch.arange(4)
    ours = build_loss("mcc", mode=mode, batch=batch_sum)(logits, target)
    act = {"softmax": True, "to_onehot_y": True} if mode == MC else {"sigmoid": True}
    t = target.unsqueeze(1) if mode == MC else channel_target(mode, target)
    theirs = monai_losses.MCCLoss(batch=batch_sum, **act)(logits, t)
    assert abs(float(ours) - float(theirs)) < 1e-6
