"""Re-running a job into its own directory: skipped only when the stored experiment config is the same."""

import json
from pathlib import Path

import pytest
from conftest import ROOT, TINY, run_train

import segtrain.cli  # noqa: F401  (registers the config's resolvers)
from segtrain.job import completed_result


def compose(overrides: list[str]) -> dict:
    """The resolved config as plain values, as the CLI hands it to the job layer."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        return OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)


def completed_job(run_dir: Path, overrides: list[str]) -> dict:
    """A metrics.json as the trainer writes it at the end of a finished job of ``overrides``."""
    cfg = compose(overrides)
    metrics = {
        "status": "completed",
        "max_epochs": cfg["trainer"]["max_epochs"],
        "best": {"epoch": 2, "val/dice": 0.5},
        "config": cfg,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def test_same_experiment_is_skipped_even_when_operational_keys_differ(tmp_path):
    stored = completed_job(tmp_path, TINY)
    assert completed_result(tmp_path, compose(TINY)) == stored
    again = [*TINY, "trainer.progress_bar=true", "job.num_threads=2", "dataset.loader.num_workers=1", "logger=none"]
    assert completed_result(tmp_path, compose(again)) == stored


@pytest.mark.parametrize(
    "change, message",
    [
        ("optimizer.lr=0.01", r"optimizer.lr: 0.003 \(stored\) != 0.01 \(now\)"),
        ("dataset=shapes_binary", r"dataset.mode: 'multiclass' \(stored\) != 'binary' \(now\)"),
        ("dataset.foreground_fraction=0.05", r"dataset.foreground_fraction: 0.15 \(stored\) != 0.05 \(now\)"),
        ("seed=3", r"seed: 0 \(stored\) != 3 \(now\)"),
        ("+loss.smooth=0.5", r"loss.smooth: '<absent>' \(stored\) != 0.5 \(now\)"),
        ("dataset.background_index=null", r"dataset.background_index: 0 \(stored\) != None \(now\)"),
    ],
)
def test_another_experiment_in_a_completed_directory_is_refused_naming_the_key(tmp_path, change, message):
    completed_job(tmp_path, TINY)
    with pytest.raises(ValueError, match=rf"holds a completed job of another configuration: .*{message}"):
        completed_result(tmp_path, compose([*TINY, change]))


def test_a_job_stored_before_background_index_was_a_key_had_background_0(tmp_path):
    stored = completed_job(tmp_path, TINY)
    del stored["config"]["dataset"]["background_index"]
    (tmp_path / "metrics.json").write_text(json.dumps(stored))
    assert completed_result(tmp_path, compose(TINY)) == stored  # shapes: 0, what the old code did
    with pytest.raises(ValueError, match=r"dataset.background_index: 0 \(stored\) != None \(now\)"):
        completed_result(tmp_path, compose([*TINY, "dataset.background_index=null"]))


def test_more_epochs_continue_and_a_metrics_file_without_config_is_refused(tmp_path):
    completed_job(tmp_path, TINY)
    assert completed_result(tmp_path, compose([*TINY, "trainer.max_epochs=3"])) is None
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    del metrics["config"]
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="records a completed job but not its config"):
        completed_result(tmp_path, compose(TINY))


def test_rerun_with_another_learning_rate_fails_instead_of_returning_stale_metrics(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "trainer.max_epochs=1", "dataset.length.train=8", "dataset.length.val=8", "logger=none"]
    run_train([*args, f"hydra.run.dir={run_dir}"], tmp_path)
    before = (run_dir / "metrics.json").read_text()
    assert json.loads(before)["config"]["optimizer"]["lr"] == 0.003
    proc = run_train([*args, f"hydra.run.dir={run_dir}", "optimizer.lr=0.01"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "optimizer.lr: 0.003 (stored) != 0.01 (now)" in proc.stderr + proc.stdout
    assert (run_dir / "metrics.json").read_text() == before
