"""The specialised losses (topology, distance, hard-pixel mining, unified focal, MCC, exp_log) against float64
references written from each definition (independently of segtrain's code: explicit shifts for the soft
morphology, scipy for distances and dilations), plus their properties: finite values and gradients at the
edges, zero gradient on ignored pixels, ~0 for a perfect prediction, a ValueError for every bad keyword and
input, and the target maps made by the loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import fresh_seed
from scipy import ndimage
from skimage.morphology import skeletonize

from segtrain.losses import build_loss

MC, BI, ML = "multiclass", "binary", "multilabel"
MODES = [MC, BI, ML]
NEW = [
    "topk",
    "ohem_ce",
    "dice_topk",
    "cldice",
    "dice_cldice",
    "skeleton_recall",
    "hausdorff_dt",
    "unified_focal",
    "asym_unified_focal",
    "mcc",
    "combo_taghanaki",
]
SIGMOID_ONLY = {"combo_taghanaki"}


def modes_of(name: str) -> list[str]:
    return [BI, ML] if name in SIGMOID_ONLY else MODES


def batch(mode: str, ignore_index: int | None = None, n: int = 3, c: int = 4, h: int = 12, w: int = 13):
    """Fresh random float64 logits N x C x H x W and a target with blobs (so skeletons and distances are not
    trivial) and, optionally, ignored pixels."""
    gen = torch.Generator().manual_seed(fresh_seed())
    c = 1 if mode == BI else c
    logits = 2 * torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    noise = torch.randn(n, c if mode == ML else 1, h, w, generator=gen, dtype=torch.float64)
    smooth = torch.nn.functional.avg_pool2d(noise, 5, 1, 2)
    if mode == MC:
        target = torch.bucketize(smooth[:, 0], torch.linspace(-0.3, 0.3, c - 1, dtype=torch.float64))
        target[0, 0, :c] = torch.arange(c)  # every class present
    else:
        target = (smooth > 0).long()
        if mode == BI:
            target = target[:, 0]
    if ignore_index is not None:
        target = torch.where(torch.rand(target.shape, generator=gen) < 0.15, ignore_index, target)
    return logits, target


def grad_of(fn, logits):
    x = logits.detach().clone().requires_grad_(True)
    value = fn(x)
    value.backward()
    return value.detach(), x.grad


def assert_matches_reference(name, kwargs, mode, ignore_index, reference, **batch_kw):
    logits, target = batch(mode, ignore_index, **batch_kw)
    ours = build_loss(name, mode=mode, ignore_index=ignore_index, **kwargs)
    v1, g1 = grad_of(lambda x: ours(x, target), logits)
    v2, g2 = grad_of(lambda x: reference(x, target), logits)
    torch.testing.assert_close(v1, v2.to(v1.dtype), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-9)


# --------------------------------------------------------------------------- reference pieces (float64)


def ref_parts(x, target, mode, ignore_index):
    """p, one-hot / 0-1 target g and the kept mask k, all N x C x S (k broadcast over channels)."""
    if mode == MC:
        p = torch.exp(x - torch.logsumexp(x, 1, keepdim=True))
        k = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
        g = torch.stack([(target == ci) & k for ci in range(x.shape[1])], 1).double()
        k = k.unsqueeze(1).expand_as(p)
    else:
        t = target.unsqueeze(1) if mode == BI else target
        p = 1 / (1 + torch.exp(-x))
        k = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        g = ((t == 1) & k).double()
    return p, g, k.double()


def ref_unit_ce(x, target, mode, ignore_index):
    """CE of every kept unit: log-sum-exp minus the label's logit; softplus(x) - x y for sigmoid units."""
    p, g, k = ref_parts(x, target, mode, ignore_index)
    if mode == MC:
        ce = torch.logsumexp(x, 1) - (x * g).sum(1)
        return ce[k[:, 0] > 0]
    ce = torch.log1p(torch.exp(-x.abs())) + x.clamp_min(0) - x * g
    return ce[k > 0]


def ref_topk(k):
    def fn(x, target, mode, ii):
        ce = ref_unit_ce(x, target, mode, ii)
        n_k = max(1, int(ce.numel() * k / 100))
        return torch.sort(ce, descending=True).values[:n_k].mean()

    return fn


def ref_ohem(thresh, min_kept):
    def fn(x, target, mode, ii):
        ce = ref_unit_ce(x, target, mode, ii)
        p_t = torch.exp(-ce.detach())
        order = torch.argsort(p_t)
        m = min(min_kept * x.shape[0], ce.numel())
        chosen = [int(i) for i in order if p_t[i] < thresh]
        chosen += [int(i) for i in order if p_t[i] >= thresh][: max(0, m - len(chosen))]
        return ce[chosen].mean()

    return fn


def ref_sum(v, batch_sum):
    dims = [0, 2, 3] if batch_sum else [2, 3]
    return v.sum(dims)


def ref_dice(x, target, mode, ii, smooth=1e-5, batch_sum=True, include_background=True):
    p, g, k = ref_parts(x, target, mode, ii)
    p = p * k
    tp, sp, sg = ref_sum(p * g, batch_sum), ref_sum(p, batch_sum), ref_sum(g, batch_sum)
    d = 1 - (2 * tp + smooth) / (sp + sg + smooth)
    return (d[..., 1:] if not include_background and d.shape[-1] > 1 else d).mean()


def shift(img, axis, step, fill):
    """img moved by ``step`` along spatial ``axis`` (2 or 3), the vacated row filled with ``fill``."""
    out = torch.full_like(img, fill)
    src = [slice(None)] * img.ndim
    dst = [slice(None)] * img.ndim
    if step > 0:
        src[axis], dst[axis] = slice(0, -step), slice(step, None)
    else:
        src[axis], dst[axis] = slice(-step, None), slice(0, step)
    out[tuple(dst)] = img[tuple(src)]
    return out


def ref_erode(img):
    lines = [torch.min(torch.min(shift(img, a, 1, np.inf), img), shift(img, a, -1, np.inf)) for a in (2, 3)]
    return torch.min(lines[0], lines[1])


def ref_dilate(img):
    out = img
    for a in (2, 3):  # a 3 x 3 max is separable
        out = torch.max(torch.max(shift(out, a, 1, -np.inf), out), shift(out, a, -1, -np.inf))
    return out


def ref_skel(img, iterations):
    skel = torch.relu(img - ref_dilate(ref_erode(img)))
    for _ in range(iterations):
        img = ref_erode(img)
        delta = torch.relu(img - ref_dilate(ref_erode(img)))
        skel = skel + torch.relu(delta - skel * delta)
    return skel


def ref_cldice(iterations=3, smooth=1.0, batch_sum=True, include_background=True):
    def fn(x, target, mode, ii):
        p, g, k = ref_parts(x, target, mode, ii)
        p = p * k
        if not include_background and p.shape[1] > 1:
            p, g = p[:, 1:], g[:, 1:]
        sp, sg = ref_skel(p, iterations), ref_skel(g, iterations)
        tprec = (ref_sum(sp * g, batch_sum) + smooth) / (ref_sum(sp, batch_sum) + smooth)
        tsens = (ref_sum(sg * p, batch_sum) + smooth) / (ref_sum(sg, batch_sum) + smooth)
        return (1 - 2 * tprec * tsens / (tprec + tsens)).mean()

    return fn


def ref_skeleton_maps(target, mode, ii, c):
    """The definition's S with scipy's dilation (cross footprint) and skimage's skeletonize."""
    cross = ndimage.generate_binary_structure(2, 1)
    t = target.numpy()
    if mode == BI:
        t = t[:, None]
    out = np.zeros((t.shape[0], c, *t.shape[-2:]))
    for n in range(t.shape[0]):
        if mode == MC:
            own = [(t[n] == ci) for ci in range(c)]
            fg = (t[n] >= 1) & (t[n] < c)
            tube = ndimage.binary_dilation(skeletonize(fg), cross, iterations=2) if fg.any() else fg
            for ci in range(1, c):
                out[n, ci] = tube & own[ci]
        else:
            for ci in range(c):
                own = t[n, ci] == 1
                tube = ndimage.binary_dilation(skeletonize(own), cross, iterations=2) if own.any() else own
                out[n, ci] = tube & own
    return torch.from_numpy(out)


def ref_skeleton_recall(smooth=1e-5, batch_sum=True):
    def fn(x, target, mode, ii):
        p, _, k = ref_parts(x, target, mode, ii)
        s = ref_skeleton_maps(target, mode, ii, x.shape[1]) * k
        if mode == MC:
            p, s = p[:, 1:], s[:, 1:]
        return 1 - ((ref_sum(p * s, batch_sum) + smooth) / (ref_sum(s, batch_sum) + smooth)).mean()

    return fn


def ref_distance(mask):
    """scipy's exact EDT: distance to the nearest pixel of the other set; 0 for an empty or full mask."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape)
    return ndimage.distance_transform_edt(mask) + ndimage.distance_transform_edt(~mask)


def ref_hausdorff(alpha=2.0, include_background=True):
    def fn(x, target, mode, ii):
        p, g, k = ref_parts(x, target, mode, ii)
        pred = ((p > 0.5) & (k > 0)).detach().numpy()
        gm = g.numpy() > 0.5
        d_p = torch.tensor(np.array([[ref_distance(m) for m in img] for img in pred]))
        d_g = torch.tensor(np.array([[ref_distance(m) for m in img] for img in gm]))
        term = (p - g) ** 2 * (d_g**alpha + d_p**alpha) * k
        if not include_background and p.shape[1] > 1:
            term, k = term[:, 1:], k[:, 1:]
        return term.sum() / k.sum()

    return fn


def ref_unified(weight=0.5, delta=0.6, gamma=0.5, smooth=1e-7, batch_sum=True, asym=False):
    def fn(x, target, mode, ii):
        p, g, k = ref_parts(x, target, mode, ii)
        if mode == MC:
            probs, onehot = p, g
        else:  # per channel the classes {1 - p, p}: stack them as a class axis after the channels
            probs = torch.stack([1 - p, p], 2).flatten(1, 2)
            onehot = torch.stack([(1 - g) * k, g], 2).flatten(1, 2)
            k = k.repeat_interleave(2, 1)
        fg = torch.zeros(probs.shape[1], dtype=torch.bool)
        fg[slice(1, None, 2 if mode != MC else 1)] = True
        w = torch.where(fg, delta, 1 - delta).view(1, -1, 1, 1)
        focal_factor = (1 - probs) ** gamma
        if asym:
            focal_factor = torch.where(fg.view(1, -1, 1, 1), torch.ones_like(probs), focal_factor)
        per_unit = -(w * focal_factor * onehot * torch.log(probs)).sum(1, keepdim=True)
        units = onehot.sum(1, keepdim=True)  # 1 per kept unit
        mf = per_unit.sum() / units.sum()
        pk = probs * k
        tp = ref_sum(pk * onehot, batch_sum)
        fn_ = ref_sum((1 - probs) * onehot, batch_sum)
        fp = ref_sum(pk * (1 - onehot) * k, batch_sum)
        ti = (tp + smooth) / (tp + delta * fn_ + (1 - delta) * fp + smooth)
        mft = (1 - ti) ** (1 - gamma)
        if asym:
            mft = torch.where(fg, mft, 1 - ti)
        return weight * mf + (1 - weight) * mft.mean()

    return fn


def ref_mcc(smooth=1e-5, batch_sum=True, include_background=True):
    def fn(x, target, mode, ii):
        p, g, k = ref_parts(x, target, mode, ii)
        tp = ref_sum(p * g * k, batch_sum) + smooth
        fp = ref_sum(p * (1 - g) * k, batch_sum) + smooth
        fn_ = ref_sum((1 - p) * g * k, batch_sum) + smooth
        tn = ref_sum((1 - p) * (1 - g) * k, batch_sum) + smooth
        mcc = (tp * tn - fp * fn_) / torch.sqrt((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_))
        loss = 1 - mcc
        return (loss[..., 1:] if not include_background and loss.shape[-1] > 1 else loss).mean()

    return fn


def ref_combo_taghanaki(alpha=0.5, beta=0.5, smooth=1.0, batch_sum=True):
    def fn(x, target, mode, ii):
        p, g, k = ref_parts(x, target, mode, ii)
        wbce = -(beta * g * torch.log(p) + (1 - beta) * (1 - g) * torch.log(1 - p))
        wbce = (wbce * k).sum() / k.sum()
        return alpha * wbce + (1 - alpha) * ref_dice(x, target, mode, ii, smooth, batch_sum)

    return fn


def ref_dice_topk(x, target, mode, ii):
    return ref_dice(x, target, mode, ii, smooth=0.5) + 2 * ref_topk(20)(x, target, mode, ii)


def ref_dice_cldice(x, target, mode, ii):
    return 0.7 * ref_dice(x, target, mode, ii, batch_sum=False) + 0.3 * ref_cldice(iterations=2)(x, target, mode, ii)


CASES = [
    ("topk", {}, ref_topk(10)),
    ("topk", {"k": 37.5}, ref_topk(37.5)),
    ("topk", {"k": 100}, ref_topk(100)),
    ("ohem_ce", {"thresh": 0.7, "min_kept": 20}, ref_ohem(0.7, 20)),
    ("ohem_ce", {"thresh": 0.3, "min_kept": 60}, ref_ohem(0.3, 60)),
    ("ohem_ce", {}, ref_ohem(0.7, 10000)),
    ("dice_topk", {"weights": [1, 2], "dice": {"smooth": 0.5}, "topk": {"k": 20}}, ref_dice_topk),
    ("cldice", {}, ref_cldice()),
    ("cldice", {"iterations": 0, "smooth": 0.2, "batch": False}, ref_cldice(0, 0.2, False)),
    ("cldice", {"include_background": False, "iterations": 5}, ref_cldice(5, include_background=False)),
    ("dice_cldice", {"alpha": 0.3, "dice": {"batch": False}, "cldice": {"iterations": 2}}, ref_dice_cldice),
    ("skeleton_recall", {}, ref_skeleton_recall()),
    ("skeleton_recall", {"smooth": 1.0, "batch": False}, ref_skeleton_recall(1.0, False)),
    ("hausdorff_dt", {}, ref_hausdorff()),
    ("hausdorff_dt", {"alpha": 0.7, "include_background": False}, ref_hausdorff(0.7, False)),
    ("unified_focal", {}, ref_unified()),
    (
        "unified_focal",
        {"weight": 0.2, "delta": 0.8, "gamma": 0.3, "batch": False},
        ref_unified(0.2, 0.8, 0.3, 1e-7, False),
    ),
    ("asym_unified_focal", {}, ref_unified(asym=True)),
    (
        "asym_unified_focal",
        {"weight": 0.7, "delta": 0.7, "gamma": 0.2, "smooth": 0.1, "batch": False},
        ref_unified(0.7, 0.7, 0.2, 0.1, False, asym=True),
    ),
    ("mcc", {}, ref_mcc()),
    ("mcc", {"smooth": 0.5, "batch": False, "include_background": False}, ref_mcc(0.5, False, False)),
    ("combo_taghanaki", {}, ref_combo_taghanaki()),
    (
        "combo_taghanaki",
        {"alpha": 0.3, "beta": 0.8, "smooth": 0.1, "batch": False},
        ref_combo_taghanaki(0.3, 0.8, 0.1, False),
    ),
]


@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "kwargs", "reference"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_value_and_gradient_match_the_float64_reference(name, kwargs, reference, mode, ignore_index) -> None:
    if mode not in modes_of(name) or (mode == ML and ignore_index is not None):
        pytest.skip("mode not defined for this loss / ignore_index not applied in multilabel mode")
    assert_matches_reference(name, kwargs, mode, ignore_index, lambda x, t: reference(x, t, mode, ignore_index))


# --------------------------------------------------------------------------- properties


def edge_cases(mode: str):
    """(label, logits, target): all background, one class, saturated logits, batch 1, 1 x 1 images."""
    gen = torch.Generator().manual_seed(fresh_seed())
    c = 1 if mode == BI else 3
    shape = (2, c, 6, 7)
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    if mode == MC:
        target = torch.randint(0, c, (2, 6, 7), generator=gen)
    else:
        target = torch.randint(0, 2, shape, generator=gen)
    yield "all background", logits, torch.zeros_like(target)
    yield "one class", logits, torch.full_like(target, c - 1 if mode == MC else 1)
    yield "logits +-1e4", torch.sign(logits) * 1e4, target
    yield "batch 1", logits[:1], target[:1]
    yield "1 x 1", logits[:, :, :1, :1], target[..., :1, :1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NEW)
def test_value_and_gradient_are_finite_on_edge_cases(name: str, dtype) -> None:
    for mode in modes_of(name):
        loss_fn = build_loss(name, mode=mode)
        for label, logits, target in edge_cases(mode):
            x = logits.to(dtype).requires_grad_(True)
            value = loss_fn(x, target)
            value.backward()
            assert value.dtype == torch.float32 and torch.isfinite(value), (mode, label, value)
            assert torch.isfinite(x.grad.float()).all(), (mode, label)
            assert value >= -1e-6, (mode, label, value)


@pytest.mark.parametrize("name", NEW)
def test_ignored_pixels_get_exactly_zero_gradient(name: str) -> None:
    for mode in [m for m in modes_of(name) if m != ML]:
        logits, target = batch(mode, ignore_index=255)
        x = logits.clone().requires_grad_(True)
        build_loss(name, mode=mode, ignore_index=255)(x, target).backward()
        grad = x.grad.movedim(1, -1)[target == 255]
        assert grad.numel() and torch.equal(grad, torch.zeros_like(grad)), mode


def perfect(mode: str, c: int = 3):
    logits, target = batch(mode, c=c)
    if mode == MC:
        onehot = torch.nn.functional.one_hot(target, c).movedim(-1, 1).double()
    else:
        t = target.unsqueeze(1) if mode == BI else target.clone()
        t[:, :, 0, 0], t[:, :, 0, 1] = 0, 1  # both classes present in every channel
        target = t[:, 0] if mode == BI else t
        onehot = t.double()
    return 30.0 * (2 * onehot - 1), target


@pytest.mark.parametrize("name", NEW)
def test_perfect_prediction_gives_about_zero(name: str) -> None:
    for mode in modes_of(name):
        logits, target = perfect(mode)
        value = build_loss(name, mode=mode)(logits, target)
        assert abs(float(value)) < 1e-4, (mode, float(value))


def test_mcc_on_a_class_absent_from_the_target_stays_about_half_for_a_perfect_prediction() -> None:
    target = torch.zeros(2, 5, 6, dtype=torch.long)
    target[:, :2] = 1  # class 2 absent
    logits = 30.0 * (2 * torch.nn.functional.one_hot(target, 3).movedim(-1, 1).double() - 1)
    # classes 0 and 1 give ~0, so the mean over three classes is the absent class's term / 3
    absent_term = 3 * float(build_loss("mcc", mode=MC)(logits, target))
    assert absent_term == pytest.approx(0.5, abs=0.01)


def test_topk_100_is_ce_and_unified_focal_reduces_to_ce_and_tversky() -> None:
    for mode in MODES:
        logits, target = batch(mode, 255 if mode != ML else None)
        ii = 255 if mode != ML else None
        ce = build_loss("ce", mode=mode, ignore_index=ii)(logits, target)
        torch.testing.assert_close(build_loss("topk", mode=mode, ignore_index=ii, k=100)(logits, target), ce)
        uf = build_loss("unified_focal", mode=mode, ignore_index=ii, weight=1.0, gamma=0.0, delta=0.5)
        torch.testing.assert_close(uf(logits, target), 0.5 * ce)
    logits, target = batch(MC)
    uf = build_loss("unified_focal", mode=MC, weight=0.0, gamma=0.0, delta=0.7, smooth=1e-5)
    tv = build_loss("tversky", mode=MC, alpha=0.3, beta=0.7, smooth=1e-5)
    torch.testing.assert_close(uf(logits, target), tv(logits, target))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_top_mean_equals_torch_topk_and_ties_share_the_gradient(k: int) -> None:
    from segtrain.losses.pixel import top_mean

    v = torch.tensor([3.0, 1.0, 2.0, 2.0, 2.0, 0.0], dtype=torch.float64, requires_grad=True)
    top_mean(v, k).backward()
    assert top_mean(v, k).item() == pytest.approx(v.detach().topk(k).values.mean().item(), abs=1e-15)
    assert v.grad.sum().item() == pytest.approx(1.0)  # a sub-gradient of the top-k mean: weights 1/k summing to 1
    tied = v.grad[2:5]
    assert torch.allclose(tied, tied[0].expand(3))  # the three 2.0s are treated alike
    assert v.grad[0].item() == pytest.approx(1 / k) and v.grad[5].item() == pytest.approx(1 / 6 if k == 6 else 0.0)


def test_combo_taghanaki_with_beta_half_is_half_bce_plus_dice() -> None:
    for mode in (BI, ML):
        logits, target = batch(mode)
        ours = build_loss("combo_taghanaki", mode=mode, alpha=0.4)(logits, target)
        bce = build_loss("bce", mode=mode)(logits, target)
        dice = build_loss("dice", mode=mode, smooth=1.0)(logits, target)
        torch.testing.assert_close(ours, 0.2 * bce + 0.6 * dice)


# --------------------------------------------------------------------------- errors

BAD_KWARGS = [
    ("topk", {"k": 0}),
    ("topk", {"k": 101}),
    ("topk", {"k": "10"}),
    ("ohem_ce", {"thresh": 0}),
    ("ohem_ce", {"thresh": 1.5}),
    ("ohem_ce", {"min_kept": 0}),
    ("ohem_ce", {"min_kept": 2.5}),
    ("cldice", {"iterations": -1}),
    ("cldice", {"iterations": 1.5}),
    ("cldice", {"smooth": -1}),
    ("cldice", {"batch": "yes"}),
    ("dice_cldice", {"alpha": 1.2}),
    ("dice_cldice", {"cldice": {"iterations": -2}}),
    ("dice_topk", {"topk": {"k": -1}}),
    ("dice_topk", {"weights": [1]}),
    ("skeleton_recall", {"smooth": -0.1}),
    ("hausdorff_dt", {"alpha": 0}),
    ("hausdorff_dt", {"alpha": -1.0}),
    ("hausdorff_dt", {"include_background": 1}),
    ("unified_focal", {"weight": 1.5}),
    ("unified_focal", {"delta": -0.1}),
    ("unified_focal", {"gamma": 2}),
    ("asym_unified_focal", {"smooth": -1}),
    ("mcc", {"smooth": -1}),
    ("mcc", {"include_background": None}),
    ("combo_taghanaki", {"alpha": 2}),
    ("combo_taghanaki", {"beta": -0.5}),
    ("topk", {"unknown": 1}),
]


@pytest.mark.parametrize(("name", "kwargs"), BAD_KWARGS, ids=lambda v: v if isinstance(v, str) else str(v))
def test_bad_keywords_raise_a_value_error_naming_them(name: str, kwargs: dict) -> None:
    mode = modes_of(name)[0]
    with pytest.raises((ValueError, TypeError), match="|".join(kwargs) if kwargs else None):
        build_loss(name, mode=mode, **kwargs)


def test_combo_taghanaki_refuses_multiclass_mode() -> None:
    with pytest.raises(ValueError, match="ce_dice"):
        build_loss("combo_taghanaki", mode=MC)


@pytest.mark.parametrize("name", NEW)
def test_bad_inputs_raise_a_value_error(name: str) -> None:
    mode = modes_of(name)[0]
    loss_fn = build_loss(name, mode=mode)
    logits, target = batch(mode)
    with pytest.raises(ValueError, match="shape|expects"):
        loss_fn(logits, target[:, :-1])
    with pytest.raises(ValueError, match="unexpected inputs"):
        loss_fn(logits, target, weights=target)
    bad = target.clone()
    bad.view(-1)[0] = 7
    with pytest.raises(ValueError, match="7"):
        loss_fn(logits, bad)


@pytest.mark.parametrize(("name", "key"), [("skeleton_recall", "skeleton"), ("hausdorff_dt", "target_distance")])
def test_aux_maps_of_the_wrong_shape_raise(name: str, key: str) -> None:
    logits, target = batch(MC)
    loss_fn = build_loss(name, mode=MC)
    with pytest.raises(ValueError, match=f"{key} of shape"):
        loss_fn(logits, target, **{key: torch.zeros(logits.shape[0], 1, *logits.shape[2:])})
    if key == "skeleton":
        with pytest.raises(ValueError, match="0 and 1"):
            loss_fn(logits, target, skeleton=torch.full(logits.shape, 0.5))


def test_skeleton_recall_needs_two_channels_in_multiclass_mode() -> None:
    with pytest.raises(ValueError, match=">= 2 channels"):
        build_loss("skeleton_recall", mode=MC)(torch.randn(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


# --------------------------------------------------------------------------- target maps


@pytest.mark.parametrize("mode", MODES)
def test_maps_made_by_the_loader_equal_the_losses_own(mode: str) -> None:
    from segtrain.data import TargetMaps

    ii = None if mode == ML else 255
    logits, target = batch(mode, ii, n=2)
    c = logits.shape[1]

    class Samples:
        num_classes, ignore_index = (c if mode != BI else 2), ii

        def __len__(self):
            return target.shape[0]

        def __getitem__(self, i):
            return {"image": torch.zeros(3, *logits.shape[2:]), "mask": target[i]}

    Samples.mode = mode
    maps = TargetMaps(Samples(), ["skeleton", "target_distance"])
    samples = [maps[i] for i in range(len(maps))]
    skeleton = torch.stack([s["skeleton"] for s in samples])
    distance = torch.stack([s["target_distance"] for s in samples])
    for name, key, value in [("skeleton_recall", "skeleton", skeleton), ("hausdorff_dt", "target_distance", distance)]:
        loss_fn = build_loss(name, mode=mode, ignore_index=ii)
        torch.testing.assert_close(loss_fn(logits, target, **{key: value}), loss_fn(logits, target))
    with pytest.raises(ValueError, match="unknown map names"):
        TargetMaps(Samples(), ["signed_distance"])


# --------------------------------------------------------------------------- exp_log


def test_exp_log_is_about_zero_for_a_perfect_prediction_with_finite_gradients() -> None:
    logits, target = perfect(MC)
    logits = logits.clone().requires_grad_(True)
    value = build_loss("exp_log", mode=MC)(logits, target)
    value.backward()
    assert abs(float(value)) < 1e-4
    assert torch.isfinite(logits.grad).all()
