"""``logger=mlflow``: one MLflow run per job, through MLflow's own client (``pip install "segtrain[mlflow]"``).

The run holds the resolved config as params (flattened keys: ``optimizer.lr``), the per-epoch scalars the
trainer logs (step = epoch), and at the end metrics.json, per_case.csv and, with ``log_checkpoint``, the
selected checkpoint. Its id is kept in ``<run dir>/mlflow_run.json``, so a resumed job continues the same
run. Without a tracking URI (``logger.mlflow.tracking_uri``, else ``$MLFLOW_TRACKING_URI``) the store is a
SQLite file under the outputs folder, MLflow's recommended local backend: no server needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segtrain.trackers.base import require, safe_uri, shareable_config

RUN_ID_FILE = "mlflow_run.json"
REPORT_RUN_FILE = "mlflow_report_run.json"
# MLflow statuses for the job's: a paused job (a successive-halving rung) may never continue, so it ends as
# FINISHED (tag segtrain.status says paused); a resumed one is set RUNNING again
RUN_STATUS = {"completed": "FINISHED", "paused": "FINISHED", "preempted": "KILLED", "failed": "FAILED"}


@dataclass
class MLflowSettings:
    """``configs/logger/mlflow.yaml``'s keys (config_checks.py checks their types against these fields)."""

    store_dir: str = "outputs/mlflow"  # the default local store: <store_dir>/mlflow.db and <store_dir>/artifacts
    tracking_uri: str | None = None  # null: $MLFLOW_TRACKING_URI, else sqlite:///<store_dir>/mlflow.db
    artifact_location: str | None = None  # a new experiment's artifact root (null: see artifact_root)
    experiment: str | None = None  # null: the sweep's folder under paths.output_dir, or "segtrain"
    log_checkpoint: bool = False  # also upload the selected checkpoint (job.select)

    def uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or self.local_uri()

    def local_uri(self) -> str:
        return "sqlite:///" + str((Path(self.store_dir) / "mlflow.db").resolve())

    def artifact_root(self) -> str | None:
        """A new experiment's artifact root: the setting, else ``artifacts/`` beside a SQLite store's file (MLflow
        would use ./mlruns of the launch directory), else the server's choice."""
        if self.artifact_location:
            return self.artifact_location
        uri = self.uri()
        if uri.startswith("sqlite:///"):
            return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
        return None


def metric_key(key: str) -> str:
    """A scalar's name as MLflow accepts it (letters, digits, ``_-./ :``): a class name such as
    ``traffic light (far)`` keeps its words."""
    return re.sub(r"[^\w\-./ :]", "_", key)


@contextlib.contextmanager
def _store_lock(settings: MLflowSettings) -> Iterator[None]:
    """Held while a job opens the local SQLite store and finds or creates its experiment: the jobs of a parallel
    sweep (hydra/launcher=joblib) would otherwise each run MLflow's schema migrations on a new mlflow.db at the
    same time and break it. A tracking server or another database serialises this itself."""
    if settings.uri() != settings.local_uri():
        yield
        return
    store = Path(settings.store_dir)
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _open(settings: MLflowSettings, experiment: str) -> tuple[Any, str]:
    """(client, experiment id): the store opened (and created, for the local one) and the experiment found or
    created, under the store's lock."""
    require("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    with _store_lock(settings):
        client = MlflowClient(tracking_uri=settings.uri())
        return client, experiment_id(client, settings, experiment)


def experiment_id(client: Any, settings: MLflowSettings, name: str) -> str:
    """The experiment ``name``, created when missing (jobs of a sweep may race to create it)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=settings.artifact_root())
    except Exception:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _reusable_run(client: Any, path: Path, uri: str) -> str | None:
    """The run id stored in ``path`` when it names a live run of the same store (a resumed job), else None."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if stored.get("tracking_uri") != safe_uri(uri) or not stored.get("run_id"):
        return None
    try:
        run = client.get_run(stored["run_id"])
    except Exception:  # deleted, or another store of the same name
        return None
    return run.info.run_id if run.info.lifecycle_stage == "active" else None


def _remember(path: Path, uri: str, experiment: str, run_id: str) -> None:
    from segtrain.atomic import atomic_write

    text = json.dumps({"tracking_uri": safe_uri(uri), "experiment": experiment, "run_id": run_id}, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text), text=True)


class MLflowTracker:
    """One MLflow run for the job in ``run_dir``, named ``run_name``, in experiment ``experiment``."""

    name = "mlflow"
    takes_images = False

    def __init__(self, settings: MLflowSettings, run_dir: Path, run_name: str, experiment: str) -> None:
        require("mlflow", "mlflow")  # a missing package stops the job before training, with the extra to install
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.run_name = run_name
        self.experiment = experiment
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, config: dict[str, Any], run_info: dict[str, Any], step: int, metrics: Sequence[str]) -> None:
        if self.run_id is not None:
            return
        from mlflow.entities import Param, RunTag
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        from segtrain.run_config import flatten

        self.client, exp_id = _open(self.settings, self.experiment)
        client, uri = self.client, self.settings.uri()
        id_file = self.run_dir / RUN_ID_FILE
        run_id = _reusable_run(client, id_file, uri)
        if run_id is not None and step == 0:  # training starts over (killed before its first checkpoint, or
            if client.get_run(run_id).info.status == "RUNNING":  # trainer.resume=null): a new run
                client.set_terminated(run_id, "KILLED")
            run_id = None
        tags = {"segtrain.kind": "job", "segtrain.run_dir": str(self.run_dir.resolve()), "segtrain.status": "running"}
        tags.update({f"segtrain.{k}": str(v) for k, v in run_info.items() if k in ("loss", "model", "dataset", "seed")})
        if run_id is None:
            run_id = client.create_run(exp_id, run_name=self.run_name, tags=tags).info.run_id
            _remember(id_file, uri, self.experiment, run_id)
        else:  # a resumed job: the same run, running again
            client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, "segtrain.status", "running")
        self.run_id = run_id
        # params are immutable in MLflow: a resumed run adds only keys it lacks (the others can differ only in
        # operational keys, as segtrain refuses to resume with a result-changing difference)
        have = client.get_run(run_id).data.params
        params = [
            Param(k[:250], _param_value(v, MAX_PARAM_VAL_LENGTH))
            for k, v in flatten(shareable_config(config)).items()
            if k[:250] not in have
        ]
        for i in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            client.log_batch(run_id, params=params[i : i + MAX_PARAMS_TAGS_PER_BATCH])
        client.log_batch(run_id, tags=[RunTag("segtrain.precision", str(run_info.get("precision")))])

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        now = int(time.time() * 1000)
        metrics = [Metric(metric_key(k), v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])

    def log_image(self, tag: str, image: Any, step: int) -> None:
        pass

    def log_artifacts(self, paths: Sequence[Path], checkpoint: Path | None) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))
        if checkpoint is not None and self.settings.log_checkpoint:
            self.client.log_artifact(self.run_id, str(checkpoint), artifact_path="checkpoints")

    def flush(self) -> None:
        pass  # every call above is synchronous

    def finish(self, status: str) -> None:
        if self.run_id is None:
            return
        self.client.set_tag(self.run_id, "segtrain.status", status)
        self.client.set_terminated(self.run_id, RUN_STATUS[status])

    def record(self) -> dict[str, Any]:
        return {"tracking_uri": safe_uri(self.settings.uri()), "experiment": self.experiment, "run_id": self.run_id}


def _param_value(value: Any, limit: int) -> str:
    text = json.dumps(value) if isinstance(value, list | dict | bool) or value is None else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def log_sweep_report(settings: MLflowSettings, sweep_dir: Path, files: Sequence[Path], experiment: str) -> dict:
    """The sweep report (summary.md, verdict.json, plots) as artifacts of a run named ``sweep-report`` (tag
    ``segtrain.kind = sweep-report``) in the sweep's experiment, beside its jobs' runs; a re-run of the sweep
    writes into the same run."""
    client, exp_id = _open(settings, experiment)
    uri = settings.uri()
    id_file = Path(sweep_dir) / REPORT_RUN_FILE
    run_id = _reusable_run(client, id_file, uri)
    if run_id is None:
        tags = {"segtrain.kind": "sweep-report", "segtrain.sweep_dir": str(Path(sweep_dir).resolve())}
        run_id = client.create_run(exp_id, run_name="sweep-report", tags=tags).info.run_id
        _remember(id_file, uri, experiment, run_id)
    for path in files:
        if Path(path).is_file():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return {"ok": True, "tracking_uri": safe_uri(uri), "experiment": experiment, "run_id": run_id}
