"""Experiment trackers (logger=mlflow, logger=wandb, several at once): results read back through each tracker's
own API, a failing tracker that does not fail the job, and a missing package named in one line."""

import json
import logging
import struct
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, run_train

from segtrain.config_checks import check_logger_config
from segtrain.trackers import Trackers, build_trackers, safe_uri, sweep_name
from segtrain.trackers.base import shareable_config

MLFLOW = {"store_dir": "unused", "tracking_uri": None, "artifact_location": None, "experiment": None}


class Recorder:
    """A backend that keeps what it was given, and raises from ``fail_at`` on (``(method, step)``)."""

    takes_images = False

    def __init__(self, name, fail_at=None):
        self.name, self.fail_at, self.calls = name, fail_at, []

    def _call(self, method, step=None):
        if self.fail_at and method == self.fail_at[0] and (step or 0) >= self.fail_at[1]:
            raise ConnectionError(f"{self.name} unreachable")
        self.calls.append((method, step))

    def start(self, config, run_info, step, metrics):
        self._call("start")

    def log_scalars(self, values, step):
        self._call("log_scalars", step)

    def log_image(self, tag, image, step):
        self._call("log_image", step)

    def log_artifacts(self, paths, checkpoint):
        self._call("log_artifacts")

    def flush(self):
        pass

    def finish(self, status):
        self._call("finish")

    def record(self):
        return {"where": self.name}


def test_a_failing_tracker_is_warned_about_once_and_the_others_log_everything(tmp_path, caplog):
    (tmp_path / "metrics.json").write_text("{}")
    good, bad = Recorder("good"), Recorder("bad", fail_at=("log_scalars", 2))
    trackers = Trackers([bad, good])
    with caplog.at_level(logging.WARNING, logger="segtrain"):
        trackers.start({}, {})
        for epoch in (1, 2, 3):
            trackers.log_scalars({"val/dice": 0.5, "val/dice/absent": float("nan"), "nothing": None}, epoch)
        trackers.log_artifacts([tmp_path / "metrics.json", tmp_path / "per_case.csv"])
        record = trackers.finish("completed")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bad" in warnings[0] and "ConnectionError: bad unreachable" in warnings[0]
    assert good.calls == [("start", None), *[("log_scalars", e) for e in (1, 2, 3)], ("log_artifacts", None),
                          ("finish", None)]  # fmt: skip
    assert bad.calls == [("start", None), ("log_scalars", 1)]
    assert record == {
        "bad": {
            "ok": False,
            "error": "ConnectionError: bad unreachable",
            "not_logged": ["scalars from epoch 2 on", "artifacts (metrics.json)", "end of run (completed)"],
        },
        "good": {"ok": True, "where": "good"},
    }


@pytest.mark.parametrize("package", ["mlflow", "wandb"])
def test_a_missing_tracker_package_stops_with_one_line_naming_the_extra(tmp_path, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # import mlflow -> ImportError, as when it is not installed
    settings = MLFLOW if package == "mlflow" else {}
    with pytest.raises(ImportError) as err:
        build_trackers({package: settings}, tmp_path, "run")
    message = str(err.value)
    assert message == f'logger={package} needs the {package} package: pip install "segtrain[{package}]"'


def test_logger_section_checks_name_the_key_and_what_is_accepted():
    check_logger_config({"tensorboard": True, "mlflow": MLFLOW, "wandb": {"mode": "offline", "tags": ["a"]}})
    with pytest.raises(ValueError, match="unknown logger 'comet' in the logger section; known: tensorboard, mlflow"):
        check_logger_config({"comet": {}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) logger.mlflow.uri; accepted: artifact_location"):
        check_logger_config({"mlflow": {"uri": "x"}})
    with pytest.raises(TypeError, match="logger.mlflow.log_checkpoint='yes' is a str; it must be true or false"):
        check_logger_config({"mlflow": {"log_checkpoint": "yes"}})
    with pytest.raises(TypeError, match="logger.tensorboard='on' is a str; it must be true or false"):
        check_logger_config({"tensorboard": "on"})


@pytest.mark.parametrize("option", ["tensorboard", "none", "mlflow", "wandb", "[tensorboard,mlflow,wandb]"])
def test_every_logger_option_composes_with_the_keys_of_its_settings_class(option):
    import dataclasses

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import segtrain.cli  # noqa: F401  (registers the config's resolvers)
    from segtrain.trackers import KNOWN

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        logger = OmegaConf.to_container(compose("train", overrides=[f"logger={option}"]).logger, resolve=True)
    check_logger_config(logger)
    expected = {"none": ["tensorboard"], "[tensorboard,mlflow,wandb]": ["tensorboard", "mlflow", "wandb"]}
    assert list(logger) == expected.get(option, [option])
    for name, settings in logger.items():
        if KNOWN[name] is not None:  # the YAML file and the settings class are one set of keys
            assert set(settings) == {f.name for f in dataclasses.fields(KNOWN[name])}


def test_a_sweep_is_named_by_its_folder_under_the_outputs_and_uris_lose_their_passwords(tmp_path):
    assert sweep_name(tmp_path / "multiruns" / "2025-05-01" / "12-00-00", tmp_path) == "multiruns/2025-05-01/12-00-00"
    assert sweep_name(None, tmp_path) is None
    assert safe_uri("postgresql://me:secret@db:5432/mlflow") == "postgresql://***@db:5432/mlflow"
    assert safe_uri("sqlite:////x/mlflow.db") == "sqlite:////x/mlflow.db"
    config = {"seed": 0, "logger": {"tensorboard": True, "mlflow": {"tracking_uri": "http://me:pw@host:5000"}}}
    assert shareable_config(config)["logger"]["mlflow"]["tracking_uri"] == "http://***@host:5000"
    assert config["logger"]["mlflow"]["tracking_uri"] == "http://me:pw@host:5000"  # the job's own is untouched


# ---------------------------------------------------------------------------------------------- end to end
def mlflow_client(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "outputs" / "mlflow" / "mlflow.db"
    assert db.is_file()
    return MlflowClient(tracking_uri=f"sqlite:///{db}")


def artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


def test_mlflow_sweep_leaves_one_experiment_with_a_run_per_job_and_the_report(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="hydra-joblib-launcher not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep = tmp_path / "outputs" / "multiruns" / "loss_sweep"
    # two jobs at once open the new local store together (its schema is made once, under a lock)
    parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    run_train(
        ["-m", *TINY, "logger=[tensorboard,mlflow]", "loss=ce,dice", *parallel, f"hydra.sweep.dir={sweep}"], tmp_path
    )
    client = mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name("multiruns/loss_sweep")  # the sweep's folder under the outputs
    assert experiment is not None, [e.name for e in client.search_experiments()]
    runs = client.search_runs([experiment.experiment_id])
    jobs = [r for r in runs if r.data.tags.get("segtrain.kind") == "job"]
    assert sorted(r.data.params["loss.name"] for r in jobs) == ["ce", "dice"]
    for run in jobs:
        job_dir = Path(run.data.tags["segtrain.run_dir"])
        assert run.info.run_name == job_dir.name and run.info.status == "FINISHED"
        params = run.data.params
        assert params["optimizer.name"] == "adamw" and params["dataset.image_size"] == "32"
        assert json.loads(params["dataset.class_names"]) == ["background", "ellipse", "rectangle", "triangle"]
        history = client.get_metric_history(run.info.run_id, "val/dice")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]
        for key in ("train/loss", "val/loss", "val/iou", "lr", "val/dice/ellipse", "val/iou/triangle", "best/val/dice"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
        assert artifacts(client, run.info.run_id) == {"metrics.json", "per_case.csv"}  # no checkpoint by default
        metrics = json.loads((job_dir / "metrics.json").read_text())
        assert metrics["tracking"]["mlflow"] == {
            "ok": True,
            "tracking_uri": f"sqlite:///{(tmp_path / 'outputs' / 'mlflow' / 'mlflow.db').resolve()}",
            "experiment": experiment.name,
            "run_id": run.info.run_id,
        }
        assert metrics["tracking"]["tensorboard"]["ok"]  # both loggers at once: TensorBoard wrote its events too
        acc = EventAccumulator(str(job_dir / "tb")).Reload()
        assert [e.step for e in acc.Scalars("val/dice")] == [1, 2]
    (report,) = [r for r in runs if r.data.tags.get("segtrain.kind") == "sweep-report"]
    assert {"summary.md", "summary.csv", "verdict.json", "summary.png", "curves.png"} <= artifacts(
        client, report.info.run_id
    )


def test_a_resumed_job_continues_its_mlflow_run(tmp_path):
    pytest.importorskip("mlflow")
    run = tmp_path / "run"
    first = [*TINY, "logger=mlflow", f"hydra.run.dir={run}"]
    run_train([*first, "job.stop_at_epoch=1"], tmp_path)
    client = mlflow_client(tmp_path)
    (paused,) = client.search_runs([client.get_experiment_by_name("segtrain").experiment_id])
    assert paused.data.tags["segtrain.status"] == "paused"
    # the logger is an operational key: the job resumes with TensorBoard added and the checkpoint uploaded
    again = [*TINY, "logger=[tensorboard,mlflow]", "logger.mlflow.log_checkpoint=true", f"hydra.run.dir={run}"]
    run_train(again, tmp_path)
    (resumed,) = client.search_runs([client.get_experiment_by_name("segtrain").experiment_id])
    assert resumed.info.run_id == paused.info.run_id
    assert resumed.info.status == "FINISHED" and resumed.data.tags["segtrain.status"] == "completed"
    steps = sorted(m.step for m in client.get_metric_history(resumed.info.run_id, "val/dice"))
    assert steps == [1, 2]
    assert resumed.data.params["logger.mlflow.log_checkpoint"] == "false"  # params keep their first value
    assert resumed.data.params["logger.tensorboard"] == "true"  # keys the first run lacked are added
    assert artifacts(client, resumed.info.run_id, "checkpoints") == {"checkpoints/last.pt"}
    assert json.loads((run / "mlflow_run.json").read_text())["run_id"] == resumed.info.run_id


def test_a_job_that_starts_training_over_gets_a_new_mlflow_run_and_its_killed_one_is_marked(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from segtrain.trackers.mlflow_tracker import MLflowSettings, MLflowTracker

    settings = MLflowSettings(store_dir=str(tmp_path / "store"))

    def started(step):
        tracker = MLflowTracker(settings, tmp_path / "run", "run", "segtrain")
        tracker.start({"seed": 0}, {"seed": 0}, step, [])
        return tracker.run_id

    first = started(0)  # killed before its first checkpoint: its run stays RUNNING
    second = started(0)  # so the next start trains from epoch 0 again: a new run
    resumed = started(1)  # and one that resumes from a checkpoint continues it
    client = MlflowClient(tracking_uri=settings.uri())
    assert second != first and resumed == second
    assert client.get_run(first).info.status == "KILLED" and client.get_run(second).info.status == "RUNNING"


def test_an_unreachable_tracker_does_not_fail_the_job_and_metrics_json_says_what_was_not_logged(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    run = tmp_path / "run"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once instead of retrying with back-off
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    nowhere = "logger.mlflow.tracking_uri=http://127.0.0.1:9"  # the discard port: nothing listens
    proc = run_train([*TINY, "logger=[tensorboard,mlflow]", nowhere, f"hydra.run.dir={run}"], tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and (run / "per_case.csv").is_file()
    mlflow = metrics["tracking"]["mlflow"]
    assert mlflow["ok"] is False and mlflow["error"]
    assert mlflow["not_logged"] == [
        "run start (config, tags)",
        "scalars from epoch 1 on",
        "artifacts (metrics.json, per_case.csv)",
        "end of run (completed)",
    ]
    assert metrics["tracking"]["tensorboard"]["ok"] is True
    log = proc.stdout + proc.stderr
    assert log.count("logger mlflow failed") == 1, log[-3000:]


# W&B writes an offline run as a LevelDB-style log of its own protobuf records (wandb_internal_pb2.Record);
# the installed wandb has no Python reader for it, so the test splits the log into records (32 KiB blocks,
# 7-byte headers) and lets wandb's protobuf classes parse each one.
def wandb_records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, or LAST of FIRST/MIDDLE/LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_run_holds_the_config_the_scalars_per_epoch_and_the_files(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    run = tmp_path / "run"
    monkeypatch.setenv("WANDB_MODE", "offline")  # wins over the config's mode: no network is touched
    run_train([*TINY, "logger=wandb", "logger.wandb.mode=online", f"hydra.run.dir={run}"], tmp_path)
    (log,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    config, history, files = {}, {}, set()
    for record in wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            assert record.run.display_name == "run" and record.run.project == "segtrain"
            config.update({u.key: json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            history[row["_step"]] = row
        elif kind == "files":
            files |= {f.path for f in record.files.files}
    assert config["loss"]["name"] == "ce_dice" and config["optimizer"]["name"] == "adamw"
    assert sorted(history) == [1, 2]
    expected = {"val/dice", "train/loss", "lr", "val/dice/ellipse", "best/val/dice"}
    assert all(expected <= set(row) for row in history.values())
    assert {"metrics.json", "per_case.csv"} <= files
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tracking"]["wandb"]["ok"] and metrics["tracking"]["wandb"]["mode"] == "offline"
