"""A job stopped in the middle of an epoch (a preemption signal, or a crash after a periodic mid-epoch
checkpoint) resumes from that batch and ends bit-identical to the same run uninterrupted."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY, run_train

from segtrain.checkpoint import load_checkpoint
from segtrain.data import build_dataset, build_loader
from segtrain.engine import Trainer, TrainerConfig
from segtrain.job import seed_everything
from segtrain.job.signals import PREEMPTED_EXIT_CODE, PreemptionSignals, signal_number
from segtrain.losses import build_loss
from segtrain.metrics import SegMetrics
from segtrain.models import build_model
from segtrain.optim import build_scheduler
from tests._data_fixtures import folder_kwargs, make_folder

SHAPES = ["background", "ellipse", "rectangle", "triangle"]
FOLDER_AUGMENT = {
    "train": [{"name": "RandomCrop", "height": 16, "width": 16}, {"name": "HorizontalFlip", "p": 0.5}],
    "val": [],
}


def make_trainer(run_dir, data_root, data: str, num_workers: int = 0, persistent: bool = False, **cfg) -> Trainer:
    """A small job as build_job makes it: seeded, train crops drawn from torch's generator (shapes) or from
    per-sample seeds (folder)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(0)
    if data == "shapes":  # every crop draws from torch's generator (main process or worker)
        kw = dict(class_names=SHAPES, image_size=32)
        train = build_dataset("shapes", split="train", length=24, crop_size=16, oversample_foreground=0.5, **kw)
        val = build_dataset("shapes", split="val", length=8, **kw)
    else:
        root = make_folder(data_root, n=12, size=(32, 32))
        train = build_dataset("folder", split="train", augment=FOLDER_AUGMENT, **folder_kwargs(root))
        val = build_dataset("folder", split="val", augment=FOLDER_AUGMENT, **folder_kwargs(root))
    classes = train.num_classes
    model = build_model("unet", classes=classes, encoder_depth=3, decoder_channels=(16, 16, 16))
    loader = dict(num_workers=num_workers, persistent_workers=persistent, seed=0)
    return Trainer(
        TrainerConfig(device="cpu", progress_bar=False, num_vis=0, max_epochs=3, deterministic=True, **cfg),
        model,
        build_loss("ce", mode="multiclass", ignore_index=255),
        torch.optim.AdamW(model.parameters(), lr=1e-3),
        lambda opt, total: build_scheduler("poly", opt, total),
        build_loader(train, 4, shuffle=True, drop_last=True, **loader),
        build_loader(val, 4, **loader),
        SegMetrics(classes, ignore_index=255, class_names=train.class_names),
        run_dir,
        run_info={"loss": "ce", "model": "unet", "dataset": data, "seed": 0},
    )


def history(run):
    with (run / "history.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in ("seconds", "data_wait")} for r in csv.DictReader(f)]


def assert_same_weights(a: Trainer, b: Trainer) -> None:
    assert a.step == b.step and a.epoch == b.epoch
    sa, sb = a.model.state_dict(), b.model.state_dict()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


CASES = {
    # the skipped batches are loaded and dropped: their crops advance torch's generator (restored after them)
    "shapes-main-process-accumulating": ("shapes", 0, False, 2),
    # ... or the workers' generators, which must have drawn for the same batches as in the straight run
    "shapes-two-workers": ("shapes", 2, False, 1),
    # per-sample seeds: the sampler starts at the batch, nothing is loaded for the skipped ones
    "folder-two-persistent-workers": ("folder", 2, True, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_stop_mid_epoch_then_resume_is_bit_identical_and_does_not_repeat_steps(tmp_path, case):
    data, workers, persistent, accumulate = CASES[case]
    kw = dict(num_workers=workers, persistent=persistent, accumulate_grad_batches=accumulate)
    straight = make_trainer(tmp_path / "straight", tmp_path / "data", data, **kw)
    straight.fit()

    stopped = make_trainer(tmp_path / "stopped", tmp_path / "data", data, **kw)
    stop_step = stopped.steps_per_epoch + 1  # one optimizer step into the second epoch
    result = stopped.fit(should_stop=lambda: stopped.step >= stop_step)
    where = {"epoch": 1, "step": stop_step, "batch": accumulate}
    assert result["status"] == "preempted" and result["preempted_at"] == where
    on_disk = json.loads((tmp_path / "stopped" / "metrics.json").read_text())
    assert on_disk["status"] == "preempted" and on_disk["preempted_at"] == where
    ckpt = load_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.pt")
    assert ckpt["step"] == stop_step and ckpt["mid_epoch"]["batch"] == accumulate

    resumed = make_trainer(tmp_path / "stopped", tmp_path / "data", data, **kw)
    result = resumed.fit()
    assert result["status"] == "trained" and result["resumed_at"] == where
    assert_same_weights(straight, resumed)
    assert history(tmp_path / "straight") == history(tmp_path / "stopped")


def test_crash_after_a_periodic_mid_epoch_checkpoint_resumes_bit_identically(tmp_path):
    """A hard kill between checkpoints (here: an error after step 9 of 6 a epoch) loses only the steps since the
    last periodic last.pt (step 8, written every 4 steps: batch 2 of the second epoch); writing them does not
    change the run."""
    straight = make_trainer(tmp_path / "straight", tmp_path / "data", "shapes")
    straight.fit()
    crashed = make_trainer(tmp_path / "crashed", tmp_path / "data", "shapes", checkpoint_every_n_steps=4)
    assert crashed.steps_per_epoch == 6

    def crash() -> bool:
        if crashed.step == 9:
            raise KeyboardInterrupt  # like a kill: nothing of the loop's own runs after it
        return False

    with pytest.raises(KeyboardInterrupt):
        crashed.fit(should_stop=crash)
    ckpt = load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 8 and ckpt["epoch"] == 1 and ckpt["mid_epoch"]["batch"] == 2
    resumed = make_trainer(tmp_path / "crashed", tmp_path / "data", "shapes", checkpoint_every_n_steps=4)
    assert resumed.fit()["resumed_at"] == {"epoch": 1, "step": 8, "batch": 2}
    assert_same_weights(straight, resumed)
    assert history(tmp_path / "straight") == history(tmp_path / "crashed")


def test_a_stop_requested_during_validation_stops_at_the_epoch_end_with_its_checkpoint(tmp_path):
    straight = make_trainer(tmp_path / "straight", tmp_path / "data", "shapes")
    straight.fit()
    stopped = make_trainer(tmp_path / "stopped", tmp_path / "data", "shapes")
    result = stopped.fit(should_stop=lambda: stopped.epoch >= 1)  # true once epoch 1's validation is done
    assert result["status"] == "preempted" and result["preempted_at"] == {"epoch": 1, "step": 6, "batch": 0}
    assert "mid_epoch" not in load_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.pt")
    resumed = make_trainer(tmp_path / "stopped", tmp_path / "data", "shapes")
    assert resumed.fit()["resumed_at"] == {"epoch": 1, "step": 6, "batch": 0}
    assert_same_weights(straight, resumed)


def test_signal_handlers_set_a_flag_and_are_put_back(tmp_path):
    before = signal.getsignal(signal.SIGUSR1)
    with PreemptionSignals(["SIGUSR1", "TERM"]) as signals:
        assert not signals.received()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert signals.received() and signals.signum == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is before
    assert signal_number("usr2") == signal.SIGUSR2
    with pytest.raises(ValueError, match="unknown signal 'SIGFOO'"):
        signal_number("SIGFOO")


def test_hand_over_runs_the_previous_handler_then_exits_75(tmp_path):
    """Under submitit the previous handler is its checkpoint-and-requeue (which exits itself)."""
    called = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: called.append(signum))
    try:
        with PreemptionSignals(["SIGUSR2"]) as signals:
            os.kill(os.getpid(), signal.SIGUSR2)
        with pytest.raises(SystemExit) as exit_info:
            signals.hand_over()
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert called == [signal.SIGUSR2] and exit_info.value.code == PREEMPTED_EXIT_CODE


# 32 batches an epoch, two loader workers: SIGTERM goes to the whole process group, workers included, as
# SLURM signals every process of a job step
CLI_ARGS = [
    *TINY,
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "dataset.length.train=256",
    "dataset.loader.num_workers=2",
    "logger=none",
]


def test_sigterm_mid_epoch_saves_exits_75_and_the_rerun_continues_bit_identically(tmp_path):
    straight = tmp_path / "straight"
    run_train([*CLI_ARGS, f"hydra.run.dir={straight}"], tmp_path)

    run = tmp_path / "preempted"
    # with MLflow installed, the preempted job's MLflow run ends KILLED and the re-run continues the same run
    store = tmp_path / "mlflow"
    tracked = ["logger=[tensorboard,mlflow]", f"logger.mlflow.store_dir={store}"] if has_mlflow() else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "train.py"), *CLI_ARGS, *tracked, f"hydra.run.dir={run}"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while not (run / "metrics.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)  # the first epoch is done: the signal lands in the second
    os.killpg(proc.pid, signal.SIGTERM)
    sent = time.monotonic()
    code = proc.wait(timeout=120)
    took = time.monotonic() - sent
    assert code == PREEMPTED_EXIT_CODE, code
    stopped = json.loads((run / "metrics.json").read_text())
    assert stopped["status"] == "preempted", stopped["status"]
    where = stopped["preempted_at"]
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["step"] == where["step"] and (ckpt.get("mid_epoch") or {"batch": 0})["batch"] == where["batch"]
    # one step (tens of ms here) and one checkpoint write; generous for a loaded 2-core machine
    assert took < 30, took
    log_text = (run / "train.log").read_text()
    assert "received SIGTERM: stopping after this optimizer step" in log_text

    if tracked:
        client = mlflow_client(store)
        run_id = json.loads((run / "mlflow_run.json").read_text())["run_id"]
        info = client.get_run(run_id)
        assert info.info.status == "KILLED" and info.data.tags["segtrain.status"] == "preempted"

    run_train([*CLI_ARGS, *tracked, f"hydra.run.dir={run}"], tmp_path)
    if tracked:
        assert json.loads((run / "mlflow_run.json").read_text())["run_id"] == run_id
        info = client.get_run(run_id)
        assert info.info.status == "FINISHED" and info.data.tags["segtrain.status"] == "completed"
        epochs = [m.step for m in client.get_metric_history(run_id, "train/loss")]
        assert epochs == [1, 2], epochs  # epoch 1 from the preempted run, epoch 2 from the re-run
    done = json.loads((run / "metrics.json").read_text())
    assert done["status"] == "completed" and done["resumed_at"] == where
    assert (
        f"(step {where['step']}); continuing at batch {where['batch']} of epoch {where['epoch'] + 1}"
        in (run / "train.log").read_text()
    )
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(run / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert history(straight) == history(run)


def has_mlflow() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlflow") is not None


def mlflow_client(store: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (from /proc), children first."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds submitit's job process through /proc")
def test_submitit_local_job_sent_its_preemption_signal_is_requeued_and_completes(tmp_path, monkeypatch):
    """hydra/launcher=slurm_local: SIGUSR2 (submitit's preemption/timeout signal) to the job's process mid-epoch.
    segtrain saves where it is and hands the signal to submitit's handler, which pickles the job's checkpoint()
    (hydra-submitit-launcher: the same job again) and exits 144; submitit's local controller starts it again,
    it resumes from last.pt in the same run directory and completes, bit-identical to a straight run."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher not installed")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    args = ["loss=ce", "seed=0", *CLI_ARGS]
    straight = tmp_path / "straight"
    run_train([*args, f"hydra.run.dir={straight}"], tmp_path)

    sweep = tmp_path / "sweep"
    launcher = ["hydra/launcher=slurm_local", f"hydra.sweep.dir={sweep}"]
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *args, *launcher]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEGTRAIN_OUTPUT": str(tmp_path / "outputs")}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.time() + 300
        while not list(sweep.glob("*/metrics.json")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)  # the first epoch is done: the signal lands in the second
        jobs = [p for p in descendants(proc.pid) if "submitit.core._submit" in cmdline(p)]
        assert len(jobs) == 1, [cmdline(p) for p in descendants(proc.pid)]
        os.kill(jobs[0], signal.SIGUSR2)
        output, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output.decode()[-3000:]
    (run,) = [p.parent for p in sweep.glob("*/metrics.json")]
    result = json.loads((run / "metrics.json").read_text())
    assert result["status"] == "completed"
    log_text = (run / "train.log").read_text()
    assert "received SIGUSR2: stopping after this optimizer step" in log_text
    assert result["resumed_at"]["step"] > 0 and "resumed from" in log_text
    submitit_logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "Requeued job" in submitit_logs, submitit_logs[-3000:]
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(run / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
