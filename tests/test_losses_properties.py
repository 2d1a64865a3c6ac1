"""Properties every loss keeps for any input hypothesis draws: finite values and gradients at the edges
(empty and single-class targets, saturated logits, low precision, batch 1, 1 x 1 and odd sizes), exactly
zero gradient on ignored pixels, ~0 for a perfect prediction, non-negativity where the math says so."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segtrain.losses import LOSSES, available_losses, build_loss

MC, BI, ML = "multiclass", "binary", "multilabel"
NAMES = [n for n in available_losses() if n != "jaccard"]
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
# can be negative: boundary (signed distances), dice_boundary and combos containing it
SIGNED = {"boundary", "dice_boundary"}
REGION = ["dice", "iou", "tversky", "focal_tversky", "generalized_dice", "log_cosh_dice"]


def kwargs_for(name: str) -> dict:
    return {"losses": [{"name": "ce"}, {"name": "dice"}]} if name == "combo" else {}


@st.composite
def problems(draw, name: str):
    modes = LOSSES.get(name).modes
    mode = draw(st.sampled_from(modes))
    n = draw(st.integers(1, 2))
    c = 1 if mode == BI else draw(st.integers(2, 4))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kind = draw(st.sampled_from(["random", "all_background", "one_class", "saturated"]))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64) * 3
    if kind == "saturated":
        logits = torch.sign(logits) * 1e4
    if mode == MC:
        target = torch.randint(0, c, (n, h, w), generator=gen)
    elif mode == BI:
        target = torch.randint(0, 2, (n, h, w), generator=gen)
    else:
        target = torch.randint(0, 2, (n, c, h, w), generator=gen)
    if kind == "all_background":
        target = torch.zeros_like(target)
    elif kind == "one_class":
        target = torch.full_like(target, c - 1 if mode == MC else 1)
    ignore_index = None
    if mode != ML and draw(st.booleans()):
        ignore_index = 255
        target = torch.where(torch.rand(target.shape, generator=gen) < 0.3, 255, target)
    return mode, ignore_index, logits.to(dtype), target


@pytest.mark.parametrize("name", NAMES)
def test_value_and_gradient_are_finite_on_edge_cases(name: str) -> None:
    @SETTINGS
    @given(problems(name))
    def check(problem) -> None:
        mode, ignore_index, logits, target = problem
        logits.requires_grad_(True)
        value = build_loss(name, mode=mode, ignore_index=ignore_index, **kwargs_for(name))(logits, target)
        value.backward()
        assert value.ndim == 0 and torch.isfinite(value), value
        assert torch.isfinite(logits.grad).all()
        if name not in SIGNED:
            assert value >= -1e-6

    check()


@pytest.mark.parametrize("name", NAMES)
def test_ignored_pixels_get_exactly_zero_gradient_for_any_input(name: str) -> None:
    @SETTINGS
    @given(problems(name))
    def check(problem) -> None:
        mode, _, logits, target = problem
        if mode == ML:
            return
        gen = torch.Generator().manual_seed(int(target.numel()))
        target = torch.where(torch.rand(target.shape, generator=gen) < 0.4, 255, target)
        logits.requires_grad_(True)
        build_loss(name, mode=mode, ignore_index=255, **kwargs_for(name))(logits, target).backward()
        t = target if target.ndim == logits.ndim - 1 else target.squeeze(1)
        grad = logits.grad.movedim(1, -1)[t == 255]
        assert torch.equal(grad, torch.zeros_like(grad))

    check()


@pytest.mark.parametrize("name", REGION)
@given(mode=st.sampled_from([MC, BI, ML]), seed=st.integers(0, 1000))
@SETTINGS
def test_perfect_prediction_gives_about_zero_for_region_losses(name: str, mode: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    c = 1 if mode == BI else 3
    if mode == MC:
        target = torch.randint(0, c, (2, 5, 6), generator=gen)
        target[0, 0, :c] = torch.arange(c)  # every class present (absent ones are not masked)
        logits = 30.0 * (torch.nn.functional.one_hot(target, c).movedim(-1, 1).double() * 2 - 1)
    else:
        target = torch.randint(0, 2, (2, c, 5, 6), generator=gen)
        target[:, :, 0, 0], target[:, :, 0, 1] = 0, 1
        logits = 30.0 * (target.double() * 2 - 1)
    value = build_loss(name, mode=mode)(logits, target)
    assert abs(float(value)) < 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_float16_and_bfloat16_values_are_close_to_float32(name: str) -> None:
    mode = LOSSES.get(name).modes[0]
    gen = torch.Generator().manual_seed(0)
    c = 1 if mode == BI else 3
    logits = torch.randn(2, c, 8, 8, generator=gen)
    if mode == MC:
        target = torch.randint(0, c, (2, 8, 8), generator=gen)
    else:
        target = torch.randint(0, 2, (2, c, 8, 8), generator=gen)
    loss_fn = build_loss(name, mode=mode, **kwargs_for(name))
    want = loss_fn(logits.to(torch.bfloat16).float(), target)
    got = loss_fn(logits.to(torch.bfloat16), target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)
