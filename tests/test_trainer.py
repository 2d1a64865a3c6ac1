"""The loop itself, through the Python API (no Hydra): non-finite losses, early stopping, precision."""

import json
import math

import pytest
import torch
from torch import nn

from segtrain.data import build_dataset, build_loader
from segtrain.engine import Trainer, TrainerConfig
from segtrain.engine.trainer import NonFiniteLossError, resolve_precision
from segtrain.losses import build_loss
from segtrain.metrics import SegMetrics
from segtrain.models import build_model
from segtrain.optim import build_scheduler

NAMES = ["background", "ellipse", "rectangle", "triangle"]


class PoisonedLoss(nn.Module):
    """CE that returns NaN on the listed calls (counting from 0)."""

    def __init__(self, bad_calls: set[int]) -> None:
        super().__init__()
        self.ce = build_loss("ce", mode="multiclass", ignore_index=None)
        self.bad, self.calls = bad_calls, 0

    def forward(self, logits, target):
        value = self.ce(logits, target)
        self.calls += 1
        return value * float("nan") if self.calls - 1 in self.bad else value


def make_trainer(tmp_path, loss_fn=None, **cfg) -> Trainer:
    torch.manual_seed(0)
    model = build_model("unet", classes=4, encoder_depth=3, decoder_channels=(16, 16, 16))
    ds = build_dataset("shapes", split="train", class_names=NAMES, length=16, image_size=32)
    val = build_dataset("shapes", split="val", class_names=NAMES, length=8, image_size=32)
    return Trainer(
        TrainerConfig(device="cpu", progress_bar=False, num_vis=2, **cfg),
        model,
        loss_fn or build_loss("ce", mode="multiclass", ignore_index=None),
        torch.optim.AdamW(model.parameters(), lr=1e-3),
        lambda opt, total: build_scheduler("poly", opt, total),
        build_loader(ds, 4, shuffle=True),
        build_loader(val, 4),
        SegMetrics(4, class_names=NAMES),
        tmp_path,
        run_info={"loss": "ce", "model": "unet", "dataset": "shapes", "seed": 0},
    )


def test_non_finite_loss_stops_with_step_epoch_and_sample_ids_and_leaves_weights_clean(tmp_path):
    trainer = make_trainer(tmp_path, PoisonedLoss({1}), max_epochs=1)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 1, optimizer step 1, samples \['shapes-train-"):
        trainer.fit()
    assert not (tmp_path / "checkpoints" / "last.pt").exists()
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values() if v.is_floating_point())
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_skip_mode_skips_bad_steps_and_gives_up_after_too_many_in_a_row(tmp_path):
    trainer = make_trainer(tmp_path, PoisonedLoss({0, 2}), max_epochs=1, on_nan="skip")
    trainer.fit()
    assert trainer.step == 2  # 4 batches, 2 skipped
    trainer = make_trainer(tmp_path / "b", PoisonedLoss(set(range(100))), max_epochs=1, on_nan="skip", max_nan_skips=3)
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
        trainer.fit()


def test_a_skipped_micro_batch_keeps_the_earlier_gradients_of_its_accumulation_group(tmp_path):
    def step_grads(trainer: Trainer) -> list[list[torch.Tensor]]:
        seen = []

        def record(optimizer, args, kwargs):
            seen.append([p.grad.clone() for p in trainer.model.parameters() if p.grad is not None])

        trainer.optimizer.register_step_pre_hook(record)
        trainer.train_epoch()
        return seen

    # micro-batch 1 (the last of the first group of 2) is NaN: the group steps on micro-batch 0's gradient
    poisoned = make_trainer(
        tmp_path / "a", PoisonedLoss({1}), max_epochs=1, on_nan="skip", accumulate_grad_batches=2, limit_train_batches=2
    )
    clean = make_trainer(tmp_path / "b", max_epochs=1, accumulate_grad_batches=2, limit_train_batches=1)
    got, want = step_grads(poisoned), step_grads(clean)
    assert poisoned.step == 1 and len(got) == len(want) == 1
    for g, w in zip(got[0], want[0], strict=True):
        assert torch.equal(g, w)


def test_early_stopping_stops_when_the_monitor_does_not_improve(tmp_path):
    trainer = make_trainer(tmp_path, max_epochs=20, monitor="val/loss", monitor_mode="min", early_stopping_patience=1)
    trainer.optimizer.param_groups[0]["lr"] = 0.0  # nothing improves after the first epoch
    trainer.scheduler.base_lrs = [0.0]
    trainer.fit()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the loop's own last word is "trained"; the job layer (segtrain.job) evaluates and writes "completed"
    assert metrics["epochs_completed"] == 2 and metrics["status"] == "trained" and trainer.stopped_early


def test_gradient_accumulation_takes_one_optimizer_step_per_group(tmp_path):
    trainer = make_trainer(tmp_path, max_epochs=1, accumulate_grad_batches=2)
    trainer.fit()
    assert trainer.step == 2


def test_unknown_monitor_names_the_logged_values(tmp_path):
    with pytest.raises(KeyError, match="trainer.monitor='val/dise' is not a logged value"):
        make_trainer(tmp_path, max_epochs=1, monitor="val/dise").fit()


def test_precision_auto_is_fp32_on_cpu_and_fp16_needs_a_gpu():
    assert resolve_precision("auto", torch.device("cpu")) == "32"
    with pytest.raises(ValueError, match="16-mixed needs a GPU"):
        resolve_precision("16-mixed", torch.device("cpu"))


def test_bf16_autocast_on_cpu_trains_with_finite_loss(tmp_path):
    trainer = make_trainer(tmp_path, max_epochs=1, precision="bf16-mixed")
    result = trainer.fit()
    assert math.isfinite(result["final"]["train/loss"])


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    from segtrain.checkpoint import save_checkpoint

    config = {"optimizer": {"name": "adamw", "lr": 0.003}, "trainer": {"max_epochs": 2, "progress_bar": True}}
    first = make_trainer(tmp_path, max_epochs=1)
    first.config_dict = config
    save_checkpoint(first._state(), tmp_path / "last.pt")
    longer = make_trainer(tmp_path, max_epochs=1)
    longer.config_dict = {"optimizer": config["optimizer"], "trainer": {"max_epochs": 4, "progress_bar": False}}
    longer.resume_from(tmp_path / "last.pt")  # more epochs, another progress bar: the same experiment
    other = make_trainer(tmp_path, max_epochs=1)
    other.config_dict = {**config, "optimizer": {"name": "adamw", "lr": 0.01}}
    with pytest.raises(ValueError, match=r"another configuration: optimizer.lr: 0.003 \(stored\) != 0.01 \(now\)"):
        other.resume_from(tmp_path / "last.pt")


def test_validation_draws_overlays_only_for_tensorboard(tmp_path):
    from segtrain.trackers import Trackers
    from segtrain.trackers.tensorboard_tracker import TensorBoardTracker

    trainer = make_trainer(tmp_path, max_epochs=1)
    assert "vis" not in trainer.validate()  # no tracker: nothing would show them
    trainer.trackers = Trackers([TensorBoardTracker(tmp_path / "tb")])
    vis = trainer.validate()["vis"]
    assert vis.ndim == 3 and vis.shape[0] == 3 and trainer.val_data_wait >= 0


@pytest.mark.parametrize("limit, batches", [(None, 2), (1, 1), (5, 2)])
def test_validate_reads_at_most_limit_val_batches(tmp_path, limit, batches):
    loss = PoisonedLoss(set())  # counts its calls: one per validation batch
    trainer = make_trainer(tmp_path, loss, max_epochs=1, limit_val_batches=limit)
    out = trainer.validate()
    assert loss.calls == batches  # 8 val samples in batches of 4
    assert math.isfinite(out["loss"]) and trainer.val_data_wait >= 0.0
