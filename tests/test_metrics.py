import math

import pytest
import torch

from segtrain.metrics import SegMetrics


def onehot_logits(pred: torch.Tensor, c: int) -> torch.Tensor:
    """Logits whose argmax is ``pred`` (N x H x W) -> N x C x H x W."""
    return torch.nn.functional.one_hot(pred, c).permute(0, 3, 1, 2).float() * 10


def test_multiclass_dice_iou_match_a_hand_computed_confusion_matrix():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 2, 0]]])  # 1 x 2 x 4
    pred = torch.tensor([[[0, 1, 1, 1], [2, 2, 0, 0]]])
    m = SegMetrics(3, "multiclass", class_names=["bg", "a", "b"])
    m.update(onehot_logits(pred, 3), target)
    out = m.compute()
    # bg: tp=2 (pos 0, 7), fp=1 (pos 6), fn=1 (pos 1); a: tp=2, fp=1, fn=0; b: tp=2, fp=0, fn=1
    assert out["dice/bg"] == pytest.approx(4 / 6)
    assert out["iou/bg"] == pytest.approx(2 / 4)
    assert out["dice/a"] == pytest.approx(4 / 5)
    assert out["iou/b"] == pytest.approx(2 / 3)
    assert out["dice"] == pytest.approx((4 / 6 + 4 / 5 + 4 / 5) / 3)
    assert out["iou"] == pytest.approx((2 / 4 + 2 / 3 + 2 / 3) / 3)


def test_class_absent_from_target_and_prediction_is_nan_and_left_out_of_the_mean():
    target = torch.tensor([[[0, 1], [1, 0]]])
    m = SegMetrics(3, "multiclass", class_names=["bg", "a", "b"])
    m.update(onehot_logits(target, 3), target)
    out = m.compute()
    assert math.isnan(out["dice/b"]) and math.isnan(out["iou/b"])
    assert out["dice"] == 1.0 and out["iou"] == 1.0


def test_false_positives_on_a_class_absent_from_target_count():
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    pred = torch.tensor([[[0, 2], [0, 0]]])
    m = SegMetrics(3, "multiclass", class_names=["bg", "a", "b"])
    m.update(onehot_logits(pred, 3), target)
    out = m.compute()
    assert out["dice/b"] == 0.0
    assert out["dice"] == pytest.approx((6 / 7 + 0.0) / 2)


def test_ignored_pixels_are_left_out_of_every_count():
    target = torch.tensor([[[0, 255], [1, 255]]])
    pred = torch.tensor([[[0, 1], [1, 0]]])
    m = SegMetrics(2, "multiclass", ignore_index=255)
    m.update(onehot_logits(pred, 2), target)
    assert m.confmat.sum().item() == 2
    assert m.compute()["dice"] == 1.0


def test_accumulates_over_batches_like_one_big_batch():
    torch.manual_seed(0)
    logits = torch.randn(6, 4, 8, 8)
    target = torch.randint(0, 4, (6, 8, 8))
    whole, parts = SegMetrics(4), SegMetrics(4)
    whole.update(logits, target)
    for i in range(0, 6, 2):
        parts.update(logits[i : i + 2], target[i : i + 2])
    assert torch.equal(whole.confmat, parts.confmat)
    assert whole.compute() == pytest.approx(parts.compute(), nan_ok=True)


def test_binary_reports_the_foreground_class():
    target = torch.tensor([[[1, 1], [0, 0]]])
    logits = torch.tensor([[[[5.0, -5.0], [5.0, -5.0]]]])  # pred fg at (0,0), (1,0)
    m = SegMetrics(1, "binary", class_names=["fg"])
    m.update(logits, target)
    out = m.compute()
    assert out["dice/fg"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert out["dice"] == out["dice/fg"]
    assert out["iou"] == pytest.approx(1 / 3)


def test_binary_accepts_n1hw_targets_and_ignore_index():
    target = torch.tensor([[[[1, 255], [0, 0]]]])
    logits = torch.tensor([[[[5.0, 5.0], [-5.0, -5.0]]]])
    m = SegMetrics(1, "binary", ignore_index=255)
    m.update(logits, target)
    assert m.compute()["dice"] == 1.0


def test_multilabel_scores_each_channel_as_a_binary_problem():
    target = torch.tensor([[[[1, 0]], [[1, 1]]]]).float()  # 1 x 2 x 1 x 2
    logits = torch.tensor([[[[5.0, 5.0]], [[5.0, 5.0]]]])
    m = SegMetrics(2, "multilabel", class_names=["a", "b"])
    m.update(logits, target)
    out = m.compute()
    assert out["dice/a"] == pytest.approx(2 / 3)
    assert out["dice/b"] == 1.0


def test_per_image_dice_averages_images_not_pixels():
    # image 0: foreground perfectly found; image 1: small foreground missed entirely
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    target[1, 0, 0] = 1
    pred = target.clone()
    pred[1, 0, 0] = 0
    m = SegMetrics(2, "multiclass")
    m.update(onehot_logits(pred, 2), target)
    out = m.compute()
    assert out["dice_per_image"] == pytest.approx(0.5)
    assert out["dice/class_1"] == pytest.approx(16 / 17)


def test_update_does_not_leave_the_device_state():
    m = SegMetrics(3)
    m.update(torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4)))
    assert m.confmat.device.type == "cpu" and m.confmat.dtype == torch.int64
    assert m.confmat.sum().item() == 32


def test_mismatched_shapes_raise_a_clear_error():
    with pytest.raises(ValueError, match="do not match"):
        SegMetrics(3).update(torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 5)))
