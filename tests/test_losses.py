"""Every loss, mode and option against a float64 reference written from its formula, plus the contract:
dtypes, shapes, ignore_index, error messages.

The references below are written straight from the formulas in docs/losses.md's catalogue (loops over classes,
explicit one-hot) and share no code with segtrain.losses.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fresh_seed
from torch import Tensor

from segtrain.losses import LOSSES, available_losses, build_loss, soft_sums


def make_batch(
    mode: str,
    shape: tuple[int, ...] = (2, 3, 6, 7),
    ignore_index: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    scale: float = 2.0,
) -> tuple[Tensor, Tensor]:
    """Random logits and a target for ``mode``; a few pixels set to ``ignore_index`` when given."""
    gen = torch.Generator().manual_seed(seed)
    n, c, *spatial = shape
    if mode == "binary":
        c = 1
    logits = (scale * torch.randn(n, c, *spatial, generator=gen, dtype=torch.float64)).to(dtype)
    if mode == "multiclass":
        target = torch.randint(0, c, (n, *spatial), generator=gen)
    elif mode == "binary":
        target = torch.randint(0, 2, (n, *spatial), generator=gen)
    else:
        target = torch.randint(0, 2, (n, c, *spatial), generator=gen)
    if ignore_index is not None and mode != "multilabel":
        drop = torch.rand(target.shape, generator=gen) < 0.2
        target = torch.where(drop, ignore_index, target)
    return logits, target


def probs_onehot(x: Tensor, target: Tensor, mode: str, ignore_index: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """p and g as N x C x S float64, and the valid mask N x 1 x S (1 kept, 0 ignored)."""
    x = x.double()
    if mode == "binary" and target.ndim == x.ndim - 1:
        target = target.unsqueeze(1)
    if mode == "multiclass":
        valid = (
            torch.ones_like(target, dtype=torch.float64) if ignore_index is None else (target != ignore_index).double()
        )
        labels = torch.where(valid.bool(), target, 0)
        g = torch.stack([(labels == c).double() for c in range(x.shape[1])], 1) * valid.unsqueeze(1)
        p = x.softmax(1) * valid.unsqueeze(1)
        return p, g, valid.unsqueeze(1)
    valid = torch.ones_like(target, dtype=torch.float64)
    if ignore_index is not None and mode == "binary":
        valid = (target != ignore_index).double()
    g = torch.where(valid.bool(), target.double(), 0.0)
    p = x.sigmoid() * valid
    return p, g, valid


def counts(p: Tensor, g: Tensor, batch: bool, squared: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    dims = [0, *range(2, p.ndim)] if batch else list(range(2, p.ndim))
    tp = (p * g).sum(dims)
    sp = (p * p).sum(dims) if squared else p.sum(dims)
    sg = (g * g).sum(dims) if squared else g.sum(dims)
    return tp, sp - tp, sg - tp


def keep(t: Tensor, include_background: bool) -> Tensor:
    return t if include_background or t.shape[-1] == 1 else t[..., 1:]


def ref_ce(x, target, mode, ignore_index, weight=None, label_smoothing=0.0):
    if mode != "multiclass":
        return ref_bce(x, target, mode, ignore_index, label_smoothing=label_smoothing)
    p, g, valid = probs_onehot(x, target, mode, ignore_index)
    c = x.shape[1]
    w = torch.ones(c, dtype=torch.float64) if weight is None else torch.tensor(weight, dtype=torch.float64)
    logp = x.double().log_softmax(1)
    wv = w.view(1, -1, *([1] * (x.ndim - 2)))
    nll = -(g * wv * logp).sum(1)
    smooth = -(wv * logp).sum(1) / c
    per_pixel = ((1 - label_smoothing) * nll + label_smoothing * smooth) * valid.squeeze(1)
    return per_pixel.sum() / (g * wv).sum()


def ref_weighted_ce(x, target, mode, ignore_index, frequencies=None):
    k = 2 if mode == "binary" else x.shape[1]
    t = target.unsqueeze(1) if mode == "binary" and target.ndim == x.ndim - 1 else target
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    if frequencies is None:
        f = torch.tensor([float(((t == c) & valid).sum()) for c in range(k)], dtype=torch.float64)
    else:
        f = torch.tensor(frequencies, dtype=torch.float64)
    w = (f.sum() - f) / f.sum()
    labels = torch.where(valid, t, 0)
    wy = w[labels] * valid
    if float(wy.sum()) == 0:
        wy = valid.double()
    if mode == "binary":
        losses = F.binary_cross_entropy_with_logits(x.double(), labels.double(), reduction="none")
    else:
        losses = -x.double().log_softmax(1).gather(1, labels.unsqueeze(1)).squeeze(1)
    return (wy * losses).sum() / wy.sum()


def ref_bce(x, target, mode, ignore_index, pos_weight=None, label_smoothing=0.0):
    _, y, valid = probs_onehot(x, target, mode, ignore_index)
    y = y * (1 - label_smoothing) + label_smoothing / 2
    s = x.double().sigmoid()
    wp = 1.0
    if pos_weight is not None:
        wp = torch.tensor(pos_weight, dtype=torch.float64).view(1, -1, *([1] * (x.ndim - 2)))
    losses = -(wp * y * s.log() + (1 - y) * (1 - s).log())
    valid = valid.expand_as(losses)
    return (losses * valid).sum() / valid.sum()


def ref_focal(x, target, mode, ignore_index, gamma=2.0, alpha=None):
    p, g, valid = probs_onehot(x, target, mode, ignore_index)
    if mode == "multiclass":
        pt = (x.double().softmax(1) * g).sum(1, keepdim=True)
        a = 1.0 if alpha is None else (torch.tensor(alpha, dtype=torch.float64).view(1, -1, 1, 1) * g).sum(1, True)
        losses = -a * (1 - pt) ** gamma * torch.log(pt.clamp_min(1e-300))
        losses = torch.where(valid.bool(), losses, 0.0)
        return losses.sum() / valid.sum()
    s = x.double().sigmoid()
    pt = s * g + (1 - s) * (1 - g)
    a = 1.0 if alpha is None else alpha * g + (1 - alpha) * (1 - g)
    losses = -a * (1 - pt) ** gamma * pt.log()
    valid = valid.expand_as(losses)
    return (losses * valid).sum() / valid.sum()


def ref_dice(x, target, mode, ignore_index, smooth=1e-5, squared=False, batch=True, include_background=True,
             log_loss=False):  # fmt: skip
    p, g, _ = probs_onehot(x, target, mode, ignore_index)
    tp, fp, fn = (keep(t, include_background) for t in counts(p, g, batch, squared))
    score = (2 * tp + smooth) / (2 * tp + fp + fn + smooth)
    return (-score.clamp_min(1e-7).log() if log_loss else 1 - score).mean()


def ref_iou(x, target, mode, ignore_index, smooth=1e-5, squared=False, batch=True, include_background=True,
            log_loss=False):  # fmt: skip
    p, g, _ = probs_onehot(x, target, mode, ignore_index)
    tp, fp, fn = (keep(t, include_background) for t in counts(p, g, batch, squared))
    score = (tp + smooth) / (tp + fp + fn + smooth)
    return (-score.clamp_min(1e-7).log() if log_loss else 1 - score).mean()


def tversky_index(x, target, mode, ignore_index, alpha, beta, smooth, batch, include_background):
    p, g, _ = probs_onehot(x, target, mode, ignore_index)
    tp = keep(counts(p, g, batch)[0], include_background)
    dims = [0, *range(2, p.ndim)] if batch else list(range(2, p.ndim))
    fp = keep((p * (1 - g)).sum(dims), include_background)
    fn = keep(((1 - p) * g).sum(dims), include_background)
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def ref_tversky(x, target, mode, ignore_index, alpha=0.5, beta=0.5, smooth=1e-5, batch=True, include_background=True):
    return (1 - tversky_index(x, target, mode, ignore_index, alpha, beta, smooth, batch, include_background)).mean()


def ref_focal_tversky(x, target, mode, ignore_index, alpha=0.5, beta=0.5, gamma=0.75, smooth=1e-5, batch=True,
                      include_background=True):  # fmt: skip
    ti = tversky_index(x, target, mode, ignore_index, alpha, beta, smooth, batch, include_background)
    return ((1 - ti) ** gamma).mean()


def ref_generalized_dice(x, target, mode, ignore_index, smooth=1e-5, batch=True):
    p, g, _ = probs_onehot(x, target, mode, ignore_index)
    tp, fp, fn = counts(p, g, batch)
    rows = tp.reshape(-1, tp.shape[-1]), fp.reshape(-1, tp.shape[-1]), fn.reshape(-1, tp.shape[-1])
    losses = []
    for tp_r, fp_r, fn_r in zip(*rows, strict=True):
        ground = (tp_r + fn_r).detach()
        w = [1 / float(gc) ** 2 if gc > 0 else math.inf for gc in ground]
        finite = [v for v in w if math.isfinite(v)]
        top = max(finite) if finite else 0.0
        w = torch.tensor([v if math.isfinite(v) else top for v in w], dtype=torch.float64)
        losses.append(1 - (2 * (w * tp_r).sum() + smooth) / ((w * (2 * tp_r + fp_r + fn_r)).sum() + smooth))
    return torch.stack(losses).mean()


def ref_log_cosh_dice(x, target, mode, ignore_index, **kwargs):
    return torch.log(torch.cosh(ref_dice(x, target, mode, ignore_index, **kwargs)))


def ref_exp_log(x, target, mode, ignore_index, w_dice=0.8, w_cross=0.2, gamma_dice=0.3, gamma_cross=0.3,
                frequencies=None):  # fmt: skip
    eps = 1e-6
    p, g, valid = probs_onehot(x, target, mode, ignore_index)
    tp, fp, fn = counts(p, g, True)
    dice = (2 * tp + 1e-5) / (2 * tp + fp + fn + 1e-5)
    dice_term = ((-dice.log()).clamp_min(eps) ** gamma_dice).mean()
    f = g.sum([0, *range(2, g.ndim)]) if frequencies is None else torch.tensor(frequencies, dtype=torch.float64)
    w = torch.where(f > 0, (f.sum() / f.clamp_min(1e-30)) ** 0.5, 0.0)
    logp = x.double().log_softmax(1)
    nll = -(g * logp).sum(1, keepdim=True)
    wl = (g * w.view(1, -1, *([1] * (x.ndim - 2)))).sum(1, keepdim=True)
    cross = torch.where(valid.bool(), wl * nll.clamp_min(eps) ** gamma_cross, 0.0)
    return w_dice * dice_term + w_cross * cross.sum() / valid.sum()


def lovasz_extension(errors: Tensor, fg: Tensor) -> Tensor:
    """Berman et al.'s Lovasz extension of the Jaccard loss for one group, the textbook loop."""
    order = torch.argsort(errors.detach(), descending=True)
    e, f = errors[order], fg[order]
    gts = f.sum()
    inter = gts - f.cumsum(0)
    union = gts + (1 - f).cumsum(0)
    jac = 1 - inter / union
    grad = torch.cat([jac[:1], jac[1:] - jac[:-1]])
    return (e * grad).sum()


def ref_lovasz(x, target, mode, ignore_index, per_image=False, classes="present"):
    x = x.double()
    if mode == "binary" and target.ndim == x.ndim - 1:
        target = target.unsqueeze(1)
    images = [(x[i : i + 1], target[i : i + 1]) for i in range(x.shape[0])] if per_image else [(x, target)]
    values = []
    for xi, ti in images:
        if mode == "multiclass":
            valid = torch.ones_like(ti, dtype=torch.bool) if ignore_index is None else ti != ignore_index
            prob = xi.softmax(1)
            chosen = range(x.shape[1]) if classes in ("present", "all") else classes
            per_class = []
            for c in chosen:
                fg = (ti[valid] == c).double()
                if classes == "present" and fg.sum() == 0:
                    continue
                per_class.append(lovasz_extension((fg - prob[:, c][valid]).abs(), fg))
            values.append(torch.stack(per_class).mean() if per_class else xi.sum() * 0)
        else:
            per_channel = []
            for c in range(x.shape[1]):
                tc, xc = ti[:, c], xi[:, c]
                valid = torch.ones_like(tc, dtype=torch.bool)
                if ignore_index is not None and mode == "binary":
                    valid = tc != ignore_index
                fg = tc[valid].double()
                errors = 1 - xc[valid] * (2 * fg - 1)
                per_channel.append(lovasz_extension(F.relu(errors), fg))
            values.append(torch.stack(per_channel).mean())
    return torch.stack(values).mean()


REFERENCES = {
    "ce": ref_ce,
    "weighted_ce": ref_weighted_ce,
    "bce": ref_bce,
    "focal": ref_focal,
    "dice": ref_dice,
    "iou": ref_iou,
    "jaccard": ref_iou,
    "tversky": ref_tversky,
    "focal_tversky": ref_focal_tversky,
    "generalized_dice": ref_generalized_dice,
    "log_cosh_dice": ref_log_cosh_dice,
    "exp_log": ref_exp_log,
    "lovasz": ref_lovasz,
}


# --------------------------------------------------------------------------- value and gradient

MC, BI, ML = "multiclass", "binary", "multilabel"

# (name, mode, ignore_index, kwargs): every option of every loss in the table
CASES = [
    ("ce", MC, None, {}),
    ("ce", MC, 255, {}),
    ("ce", MC, 255, {"weight": [0.2, 1.0, 3.0], "label_smoothing": 0.1}),
    ("ce", BI, 255, {}),
    ("ce", ML, None, {"label_smoothing": 0.2}),
    ("weighted_ce", MC, None, {}),
    ("weighted_ce", MC, 255, {}),
    ("weighted_ce", MC, 0, {}),
    ("weighted_ce", MC, None, {"frequencies": [0.7, 0.2, 0.1]}),
    ("weighted_ce", BI, 255, {}),
    ("bce", BI, None, {}),
    ("bce", BI, 255, {"pos_weight": 3.0}),
    ("bce", ML, None, {"pos_weight": [1.0, 2.0, 0.5]}),
    ("focal", MC, None, {}),
    ("focal", MC, 255, {"gamma": 0.5, "alpha": [0.25, 0.5, 0.25]}),
    ("focal", BI, 255, {"alpha": 0.25}),
    ("focal", ML, None, {"gamma": 1.5, "alpha": 0.7}),
    ("dice", MC, None, {}),
    ("dice", MC, 255, {"batch": False, "smooth": 1.0}),
    ("dice", MC, 1, {"squared": True, "include_background": False}),
    ("dice", MC, None, {"log_loss": True}),
    ("dice", BI, 255, {}),
    ("dice", BI, None, {"batch": False, "include_background": False}),
    ("dice", ML, None, {"squared": True, "batch": False}),
    ("iou", MC, 255, {}),
    ("iou", MC, None, {"batch": False, "smooth": 0.5, "include_background": False}),
    ("jaccard", BI, None, {"log_loss": True}),
    ("iou", ML, None, {"squared": True}),
    ("tversky", MC, 255, {"alpha": 0.3, "beta": 0.7}),
    ("tversky", BI, None, {"alpha": 0.7, "beta": 0.3, "batch": False}),
    ("tversky", ML, None, {"include_background": False, "smooth": 1.0}),
    ("focal_tversky", MC, 255, {}),
    ("focal_tversky", MC, None, {"alpha": 0.3, "beta": 0.7, "gamma": 1.5, "batch": False}),
    ("focal_tversky", BI, None, {"gamma": 0.5}),
    ("focal_tversky", ML, None, {"include_background": False}),
    ("generalized_dice", MC, 255, {}),
    ("generalized_dice", MC, None, {"batch": False, "smooth": 1.0}),
    ("generalized_dice", BI, None, {}),
    ("generalized_dice", ML, None, {"batch": False}),
    ("log_cosh_dice", MC, 255, {}),
    ("log_cosh_dice", BI, None, {"batch": False}),
    ("log_cosh_dice", ML, None, {"squared": True}),
    ("exp_log", MC, None, {}),
    ("exp_log", MC, 255, {"w_dice": 0.5, "w_cross": 0.5, "gamma_dice": 1.0, "gamma_cross": 0.5}),
    ("exp_log", MC, None, {"frequencies": [10, 3, 1]}),
    ("lovasz", MC, None, {}),
    ("lovasz", MC, 255, {"per_image": True}),
    ("lovasz", MC, 0, {"classes": "all"}),
    ("lovasz", MC, None, {"classes": [0, 2], "per_image": True}),
    ("lovasz", BI, 255, {}),
    ("lovasz", BI, None, {"per_image": True}),
    ("lovasz", ML, None, {}),
    ("lovasz", ML, None, {"per_image": True}),
]


def case_id(case: tuple) -> str:
    name, mode, ignore_index, kwargs = case
    opts = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}-{mode}-ignore={ignore_index}-{opts}"


def value_and_grad(fn, logits, target):
    logits = logits.detach().clone().requires_grad_(True)
    value = fn(logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    return value, grad


def reference(name: str):
    if name in REFERENCES:
        return REFERENCES[name]
    raise KeyError(name)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_loss_matches_float64_reference_in_value_and_gradient(case: tuple) -> None:
    name, mode, ignore_index, kwargs = case
    logits, target = make_batch(mode, ignore_index=ignore_index, seed=fresh_seed())
    loss_fn = build_loss(name, mode=mode, ignore_index=ignore_index, **kwargs)
    ref = reference(name)

    def ref_fn(x, t):
        return ref(x, t, mode, ignore_index, **kwargs)

    want, want_grad = value_and_grad(ref_fn, logits, target)
    got, got_grad = value_and_grad(loss_fn, logits, target)
    assert got.dtype == torch.float64 and got.ndim == 0
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-8, atol=1e-12)
    # float32 logits: value within 1e-5 and gradient within 1e-4 of the float64 reference
    got32, grad32 = value_and_grad(loss_fn, logits.float(), target)
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad32.double(), want_grad, rtol=1e-4, atol=1e-4 * want_grad.abs().max().item())


COMPOUNDS = [
    ("ce_dice", MC, 255, {}, lambda x, t, m, i: ref_ce(x, t, m, i) + ref_dice(x, t, m, i)),
    ("ce_dice", ML, None, {}, lambda x, t, m, i: ref_ce(x, t, m, i) + ref_dice(x, t, m, i)),
    (
        "bce_dice",
        BI,
        255,
        {"weights": [0.3, 2.0], "bce": {"pos_weight": 2.0}, "dice": {"smooth": 1.0}},
        lambda x, t, m, i: 0.3 * ref_bce(x, t, m, i, pos_weight=2.0) + 2 * ref_dice(x, t, m, i, smooth=1.0),
    ),
    (
        "focal_dice",
        MC,
        255,
        {"focal": {"gamma": 1.0}, "dice": {"batch": False}},
        lambda x, t, m, i: ref_focal(x, t, m, i, gamma=1.0) + ref_dice(x, t, m, i, batch=False),
    ),
    ("focal_dice", BI, None, {}, lambda x, t, m, i: ref_focal(x, t, m, i) + ref_dice(x, t, m, i)),
    (
        "combo",
        MC,
        255,
        {
            "losses": [
                {"name": "ce", "weight": 0.5},
                {"name": "dice", "smooth": 1.0},
                {"name": "focal", "gamma": 3},
            ]
        },
        lambda x, t, m, i: 0.5 * ref_ce(x, t, m, i) + ref_dice(x, t, m, i, smooth=1.0) + ref_focal(x, t, m, i, 3.0),
    ),
]


@pytest.mark.parametrize("case", COMPOUNDS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_compound_loss_is_the_weighted_sum_of_its_parts(case: tuple) -> None:
    name, mode, ignore_index, kwargs, ref = case
    logits, target = make_batch(mode, ignore_index=ignore_index, seed=fresh_seed())
    got, got_grad = value_and_grad(build_loss(name, mode=mode, ignore_index=ignore_index, **kwargs), logits, target)
    want, want_grad = value_and_grad(lambda x, t: ref(x, t, mode, ignore_index), logits, target)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-8, atol=1e-12)


def test_compound_parts_receive_mode_and_ignore_index_from_the_top() -> None:
    loss_fn = build_loss("focal_dice", mode=BI, ignore_index=7, focal={"gamma": 3.0})
    assert [p.mode for p in loss_fn.parts] == [BI, BI]
    assert [p.ignore_index for p in loss_fn.parts] == [7, 7]
    assert loss_fn.parts[0].gamma == 3.0


def test_compound_part_kwargs_may_not_set_mode() -> None:
    with pytest.raises(ValueError, match="at the top"):
        build_loss("ce_dice", dice={"mode": BI})


def test_combo_rejects_an_entry_without_a_name() -> None:
    with pytest.raises(ValueError, match="'name'"):
        build_loss("combo", losses=[{"weight": 1.0}])


def test_combo_rejects_an_unknown_part_keyword() -> None:
    with pytest.raises(TypeError, match="smoth"):
        build_loss("combo", losses=[{"name": "dice", "smoth": 1.0}])


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("ce_dice", "mode, ignore_index, weights, ce, dice"),
        ("bce_dice", "mode, ignore_index, weights, bce, dice"),
        ("dice_topk", "mode, ignore_index, weights, dice, topk"),
        ("dice_cldice", "mode, ignore_index, alpha, dice, cldice"),
        ("dice_boundary", "mode, ignore_index, boundary_weight_start, boundary_weight_end, dice, boundary"),
        ("bce", "mode, ignore_index, pos_weight"),
    ],
)
def test_unknown_keywords_of_a_compound_list_every_accepted_one(name: str, accepted: str) -> None:
    """Part names and base keywords are listed; the parts and weights a subclass sets are not config keywords."""
    for bad in ("smoth", "parts", "weights" if "weights" not in accepted else "losses"):
        with pytest.raises(TypeError, match=rf"\['{bad}'\]; accepted: {accepted}$"):
            build_loss(name, **{bad: 1})


def test_pair_losses_default_to_their_first_mode_and_pass_part_keywords_on() -> None:
    assert build_loss("bce_dice").mode == "binary" and build_loss("ce_dice").mode == "multiclass"
    loss_fn = build_loss("focal_dice", mode="binary", ignore_index=255, focal={"gamma": 3.0}, dice={"smooth": 1.0})
    focal, dice = loss_fn.parts
    assert (focal.gamma, dice.smooth, focal.mode, dice.ignore_index) == (3.0, 1.0, "binary", 255)


# --------------------------------------------------------------------------- contract


def supported_mode(name: str) -> str:
    from segtrain.losses import LOSSES

    modes = LOSSES.get(name).modes
    return MC if MC in modes else modes[0]


def default_kwargs(name: str) -> dict:
    return {"losses": [{"name": "ce"}, {"name": "dice"}]} if name == "combo" else {}


@pytest.mark.parametrize("name", available_losses())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_value_is_float32_for_low_precision_logits_and_float64_for_float64(name: str, dtype: torch.dtype) -> None:
    mode = supported_mode(name)
    logits, target = make_batch(mode, dtype=dtype)
    logits.requires_grad_(True)
    value = build_loss(name, mode=mode, **default_kwargs(name))(logits, target)
    value.backward()
    assert value.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert value.ndim == 0 and torch.isfinite(value)
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", available_losses())
def test_ignored_pixels_get_zero_gradient(name: str) -> None:
    mode = supported_mode(name)
    if mode == ML:
        mode = BI  # ignore_index applies in multiclass and binary mode
    logits, target = make_batch(mode, ignore_index=255, seed=3)
    logits.requires_grad_(True)
    build_loss(name, mode=mode, ignore_index=255, **default_kwargs(name))(logits, target).backward()
    ignored = target == 255
    grad = logits.grad.movedim(1, -1)[ignored]
    assert ignored.any() and torch.equal(grad, torch.zeros_like(grad))
    assert logits.grad.movedim(1, -1)[~ignored].abs().sum() > 0


@pytest.mark.parametrize("name", available_losses())
def test_ignored_pixels_do_not_change_the_value(name: str) -> None:
    mode = supported_mode(name)
    if mode == ML:
        mode = BI
    logits, target = make_batch(mode, ignore_index=255, seed=4)
    loss_fn = build_loss(name, mode=mode, ignore_index=255, **default_kwargs(name))
    other = logits.clone()
    other.movedim(1, -1)[target == 255] = 50.0 * torch.randn_like(other.movedim(1, -1)[target == 255])
    torch.testing.assert_close(loss_fn(logits, target), loss_fn(other, target), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", available_losses())
def test_volumetric_logits_work(name: str) -> None:
    mode = supported_mode(name)
    logits, target = make_batch(mode, shape=(1, 3, 4, 5, 6), dtype=torch.float32)
    value = build_loss(name, mode=mode, **default_kwargs(name))(logits.requires_grad_(True), target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_binary_target_may_have_a_channel_dim_and_be_float() -> None:
    logits, target = make_batch(BI)
    loss_fn = build_loss("dice", mode=BI)
    torch.testing.assert_close(loss_fn(logits, target), loss_fn(logits, target.unsqueeze(1).float()))


def test_losses_are_computed_in_float32_under_autocast() -> None:
    logits, target = make_batch(MC, dtype=torch.float32)
    expected = build_loss("dice")(logits, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = build_loss("dice")(logits, target)
        tp, sum_p, sum_g = soft_sums(logits, target)
    assert got.dtype == torch.float32 and tp.dtype == torch.float32
    torch.testing.assert_close(got, expected)


def test_soft_sums_are_per_class_or_per_image_and_class() -> None:
    logits, target = make_batch(MC, shape=(2, 3, 4, 4))
    tp, sum_p, sum_g = soft_sums(logits, target, batch=True)
    assert tp.shape == sum_p.shape == sum_g.shape == (3,)
    tp_n, sum_p_n, sum_g_n = soft_sums(logits, target, batch=False)
    assert tp_n.shape == sum_p_n.shape == sum_g_n.shape == (2, 3)
    torch.testing.assert_close(tp_n.sum(0), tp)
    torch.testing.assert_close(sum_g, torch.bincount(target.flatten(), minlength=3).double())
    torch.testing.assert_close(sum_p, logits.softmax(1).sum((0, 2, 3)))


# --------------------------------------------------------------------------- errors


def test_unknown_loss_name_lists_the_known_names() -> None:
    with pytest.raises(KeyError, match="focal_dice"):
        build_loss("focal_dyce")


def test_unknown_keyword_lists_the_accepted_ones() -> None:
    with pytest.raises(TypeError, match="gamma"):
        build_loss("focal", gama=2.0)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown mode 'multi-class'"):
        build_loss("dice", mode="multi-class")


@pytest.mark.parametrize(("name", "mode"), [("bce", MC), ("exp_log", BI), ("bce_dice", MC), ("weighted_ce", ML)])
def test_loss_refuses_a_mode_it_does_not_support(name: str, mode: str) -> None:
    with pytest.raises(ValueError, match="does not support mode"):
        build_loss(name, mode=mode)


@pytest.mark.parametrize(
    ("mode", "logits_shape", "target_shape", "message"),
    [
        (MC, (2, 3, 8), (2, 8), "N x C x H x W"),
        (MC, (2, 3, 8, 8), (2, 8, 9), "target"),
        (MC, (2, 3, 8, 8), (3, 8, 8), "target"),
        (MC, (2, 3, 8, 8), (2, 1, 8, 8), "target"),
        (BI, (2, 2, 8, 8), (2, 8, 8), "1 channel"),
        (BI, (2, 1, 8, 8), (2, 2, 8, 8), "target"),
        (ML, (2, 3, 8, 8), (2, 8, 8), "N x C x H x W"),
    ],
)
def test_wrong_shapes_raise_a_clear_error(mode, logits_shape, target_shape, message) -> None:
    logits = torch.zeros(logits_shape)
    target = torch.zeros(target_shape, dtype=torch.long)
    with pytest.raises(ValueError, match=message):
        build_loss("dice", mode=mode)(logits, target)


def test_target_class_outside_the_logits_channels_is_refused() -> None:
    logits, target = make_batch(MC)
    target[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"class 3.*\[0, 3\)"):
        build_loss("ce")(logits, target)


MULTICLASS_LOSSES = [n for n in available_losses() if n != "jaccard" and MC in LOSSES.get(n).modes]


@pytest.mark.parametrize("name", MULTICLASS_LOSSES)
@pytest.mark.parametrize("classes", [3, 12])  # dense and gathered soft counts
@pytest.mark.parametrize(("bad", "ignore_index"), [(None, None), (-1, None), (None, 255), (-1, 255)])
def test_every_multiclass_loss_refuses_a_class_outside_the_channels(name, classes, bad, ignore_index) -> None:
    """Also where the up-front range check is left to the op that indexes with the labels (CPU)."""
    logits, target = make_batch(MC, shape=(2, classes, 5, 6), ignore_index=ignore_index, seed=3)
    bad = classes if bad is None else bad
    target[1, 2, 3] = bad
    kwargs = {"losses": [{"name": "lovasz"}, {"name": "boundary"}]} if name == "combo" else {}
    with pytest.raises(ValueError, match=rf"class {bad}, which is outside \[0, {classes}\)"):
        build_loss(name, ignore_index=ignore_index, **kwargs)(logits, target)
    if name in ("ce", "combo"):  # the variants that keep the up-front check
        other = {"label_smoothing": 0.1} if name == "ce" else {"losses": [{"name": "ce"}, {"name": "dice"}]}
        with pytest.raises(ValueError, match=rf"class {bad}, which is outside"):
            build_loss(name, ignore_index=ignore_index, **other)(logits, target)


def test_losses_that_index_every_label_skip_the_range_pass_on_cpu(monkeypatch) -> None:
    logits, target = make_batch(MC, seed=4)
    monkeypatch.setattr(torch, "aminmax", lambda *a, **k: pytest.fail("a range pass over the target"))
    for name in ("ce", "dice", "ce_dice", "focal", "exp_log"):
        build_loss(name)(logits, target)


def test_ignore_index_outside_the_classes_is_allowed_but_other_values_are_not() -> None:
    logits, target = make_batch(MC, ignore_index=255)
    build_loss("dice", ignore_index=255)(logits, target)
    with pytest.raises(ValueError, match="ignore_index=254"):
        build_loss("dice", ignore_index=254)(logits, target)


def test_multiclass_target_must_hold_integers() -> None:
    logits, target = make_batch(MC)
    with pytest.raises(ValueError, match="integer"):
        build_loss("dice")(logits, target.float())


def test_sigmoid_target_must_lie_in_zero_one() -> None:
    logits, target = make_batch(ML)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        build_loss("bce", mode=ML)(logits, target * 2)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("dice", {"smooth": -1.0}, "smooth"),
        ("focal", {"gamma": -2.0}, "gamma"),
        ("focal", {"alpha": 0.25}, "list of per-class"),
        ("focal", {"mode": BI, "alpha": 1.5}, r"\[0, 1\]"),
        ("ce", {"mode": BI, "weight": [1.0, 2.0]}, "pos_weight"),
        ("ce", {"label_smoothing": 2.0}, "label_smoothing"),
        ("focal_dice", {"weights": [1.0]}, "2 numbers"),
        ("weighted_ce", {"frequencies": [0, 0]}, "frequencies"),
        ("combo", {"losses": []}, "non-empty"),
        ("dice", {"ignore_index": 2.5}, "ignore_index"),
    ],
)
def test_bad_arguments_are_refused_in_the_constructor(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_loss(name, **kwargs)


def test_per_class_vector_of_the_wrong_length_is_refused() -> None:
    logits, target = make_batch(MC)
    with pytest.raises(ValueError, match="2 entries but the logits have 3 classes"):
        build_loss("ce", weight=[1.0, 2.0])(logits, target)


# --------------------------------------------------------------------------- boundary


def ref_signed_distance(mask: Tensor) -> Tensor:
    """Brute force: outside the object the distance to the nearest object pixel; inside, minus (the
    distance to the nearest background pixel - 1); zeros when there is no boundary."""
    if not mask.any() or mask.all():
        return torch.zeros(mask.shape, dtype=torch.float64)
    coords = torch.stack(torch.meshgrid(*[torch.arange(s) for s in mask.shape], indexing="ij"), -1).double()
    flat = coords.reshape(-1, mask.ndim)
    dist = torch.cdist(flat, flat)
    inside = mask.flatten()
    to_object = dist[:, inside].min(1).values
    to_background = dist[:, ~inside].min(1).values
    out = torch.where(inside, -(to_background - 1), to_object)
    return out.reshape(mask.shape)


@pytest.mark.parametrize(
    ("mode", "ignore_index", "include_background"),
    [(MC, None, False), (MC, 255, True), (BI, 255, False), (ML, None, False)],
)
def test_boundary_loss_matches_brute_force_signed_distances(mode, ignore_index, include_background) -> None:
    logits, target = make_batch(mode, ignore_index=ignore_index, seed=5)
    loss_fn = build_loss("boundary", mode=mode, ignore_index=ignore_index, include_background=include_background)
    got, got_grad = value_and_grad(loss_fn, logits, target)

    def ref(x, t):
        p, g, valid = probs_onehot(x, t, mode, ignore_index)
        if mode == MC and not include_background:
            p, g = p[:, 1:], g[:, 1:]
        phi = torch.stack(
            [torch.stack([ref_signed_distance(g[n, k] > 0) for k in range(g.shape[1])]) for n in range(g.shape[0])]
        )
        valid = valid.expand_as(p)
        return (p * phi * valid).sum() / valid.sum()

    want, want_grad = value_and_grad(ref, logits, target)
    # the distance maps are float32 (exact EDT, rounded once): 1e-6 relative instead of float64's 1e-10
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-9)


def test_dice_boundary_ramps_the_boundary_weight_linearly_over_epochs() -> None:
    loss_fn = build_loss("dice_boundary", boundary_weight_start=0.0, boundary_weight_end=1.0)
    logits, target = make_batch(MC, seed=6)
    dice = build_loss("dice")(logits, target)
    boundary = build_loss("boundary")(logits, target)
    torch.testing.assert_close(loss_fn(logits, target), dice)
    for epoch, weight in [(0, 0.0), (2, 0.5), (4, 1.0), (9, 1.0)]:
        loss_fn.set_epoch(epoch, 5)
        assert loss_fn.weights[1] == pytest.approx(weight)
        torch.testing.assert_close(loss_fn(logits, target), dice + weight * boundary)


def test_combo_forwards_set_epoch_to_its_parts() -> None:
    loss_fn = build_loss("combo", losses=[{"name": "ce"}, {"name": "dice_boundary", "boundary_weight_start": 0.1}])
    loss_fn.set_epoch(3, 4)
    assert loss_fn.parts[1].weights[1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("gamma", "alpha"), [(2.0, None), (2.0, 0.25), (0.5, 0.7), (0.0, None), (1.0, None), (3.0, 0.25)]
)
def test_sigmoid_focal_matches_the_formula_on_soft_targets_and_passes_gradcheck(gamma, alpha) -> None:
    gen = torch.Generator().manual_seed(11)
    x = (torch.randn(2, 3, 5, 4, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    y = torch.rand(2, 3, 5, 4, generator=gen, dtype=torch.float64)  # soft targets too
    y[0] = y[0].round()
    loss_fn = build_loss("focal", mode="multilabel", gamma=gamma, alpha=alpha)
    assert torch.autograd.gradcheck(lambda v: loss_fn(v, y), (x,))
    p = x.sigmoid()
    q = y + p * (1 - 2 * y)
    at = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    want = (at * q**gamma * (F.softplus(x, threshold=1000) - x * y)).mean()
    torch.testing.assert_close(loss_fn(x, y), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("gamma", [2.0, 0.5, 3.0])
def test_multiclass_focal_passes_gradcheck(gamma: float) -> None:
    logits, target = make_batch(MC, shape=(2, 4, 5, 3), ignore_index=255, seed=15)
    loss_fn = build_loss("focal", gamma=gamma, ignore_index=255)
    assert torch.autograd.gradcheck(lambda v: loss_fn(v, target), (logits.requires_grad_(True),))


def test_gradients_may_run_twice_on_a_retained_graph() -> None:
    cases = [("ce", MC, (2, 3, 4, 4)), ("focal", MC, (2, 3, 4, 4)), ("bce", BI, (2, 1, 4, 4))]
    cases += [("dice", BI, (2, 1, 4, 4)), ("dice", MC, (2, 3, 4, 4))]
    for name, mode, shape in cases:
        logits, target = make_batch(mode, shape=shape, seed=3)
        logits.requires_grad_(True)
        loss = build_loss(name, mode=mode)(logits, target)
        first = torch.autograd.grad(loss, logits, retain_graph=True)[0]
        torch.testing.assert_close(torch.autograd.grad(loss, logits)[0], first, rtol=0, atol=0)


@pytest.mark.parametrize("classes", [3, 12])
@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("squared", [False, True])
def test_soft_sums_match_a_dense_float64_reference(classes, ignore_index, batch, squared) -> None:
    logits, target = make_batch(MC, shape=(3, classes, 5, 6), ignore_index=ignore_index, seed=classes)
    logits.requires_grad_(True)
    got = soft_sums(logits, target, ignore_index=ignore_index, batch=batch, squared=squared)
    p, g, valid = probs_onehot(logits, target, MC, ignore_index)
    dims = (0, 2, 3) if batch else (2, 3)
    want = ((p * g).sum(dims), ((p * p) if squared else p).sum(dims), g.sum(dims))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    grad_got = torch.autograd.grad(sum(t.sum() * (i + 1) for i, t in enumerate(got)), logits)[0]
    grad_want = torch.autograd.grad(sum(t.sum() * (i + 1) for i, t in enumerate(want)), logits)[0]
    torch.testing.assert_close(grad_got, grad_want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["ce_dice", "focal_dice", "dice_boundary"])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_compound_equals_the_weighted_sum_of_its_parts_in_value_and_gradient(name: str, ignore_index) -> None:
    parts = {"ce_dice": ["ce", "dice"], "focal_dice": ["focal", "dice"], "dice_boundary": ["dice", "boundary"]}[name]
    weights = [1.0, 0.5] if name == "dice_boundary" else [1.0, 1.0]
    logits, target = make_batch(MC, shape=(2, 4, 6, 6), ignore_index=ignore_index, seed=9)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    separate = sum(w * build_loss(n, ignore_index=ignore_index)(a, target) for w, n in zip(weights, parts, strict=True))
    separate.backward()
    kwargs = {"boundary_weight_start": 0.5} if name == "dice_boundary" else {}
    whole = build_loss(name, ignore_index=ignore_index, **kwargs)(b, target)
    whole.backward()
    torch.testing.assert_close(whole, separate, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # float32: the packed numpy sort
@pytest.mark.parametrize("mode", [MC, BI])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_lovasz_numpy_argsort_agrees_with_torch_sort_in_value_and_gradient(
    mode, ignore_index, dtype, monkeypatch
) -> None:
    from segtrain.losses import lovasz

    logits, target = make_batch(mode, shape=(2, 4, 9, 8), ignore_index=ignore_index, seed=21)
    logits = logits.to(dtype)
    loss_fn = build_loss("lovasz", mode=mode, ignore_index=ignore_index)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    fast = loss_fn(a, target)
    fast.backward()
    monkeypatch.setattr(lovasz, "descending_order", lovasz.descending_order_plain)
    plain = loss_fn(b, target)
    plain.backward()
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_packed_descending_order_is_numpy_stable_argsort_of_the_negated_keys() -> None:
    from segtrain.losses.lovasz import packed_descending_order

    rng = np.random.default_rng(0)
    keys = rng.normal(size=(3, 500)).astype(np.float32)
    keys[0, :20] = -np.inf
    keys[1, 100:160] = 0.25  # ties keep index order
    keys[2, ::7] = -1e-30
    keys[2, 1::7] = 3e38
    expected = np.argsort(-keys, axis=1, kind="stable")
    np.testing.assert_array_equal(packed_descending_order(keys), expected)
