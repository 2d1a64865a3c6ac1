"""The Hydra app behind ``python train.py``: composes and checks the config, skips a completed job, and hands
the rest to the job layer (segtrain.job). Hydra stays here, in sweep_callback.py and in hydra_plugins/."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

# torch, smp and the rest load inside the functions that need them, so that `python train.py --help`
# and config errors answer in a second instead of after ~10 s of imports (smp pulls in timm/torchvision).
log = logging.getLogger("segtrain")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "configs"


def _default_data_dir() -> str:
    """The data sets' root: ``$SEGTRAIN_DATA``, else ``<repo>/data`` (``paths.data_dir`` overrides both)."""
    return os.environ.get("SEGTRAIN_DATA") or str(PROJECT_ROOT / "data")


for _name, _fn in {"project_root": lambda: str(PROJECT_ROOT), "default_data_dir": _default_data_dir}.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)


def train(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra side of a job: the resolved config as plain values, the run directory Hydra made, and what
    a sweep varies (for TensorBoard's HParams view); ``segtrain.job.run_job`` does the rest."""
    from segtrain.job import run_job

    run_info = {
        "loss": cfg.loss.name,
        "model": cfg.model.name,
        "encoder": cfg.model.get("encoder_name"),
        "dataset": cfg.dataset.name,
        "seed": int(cfg.seed),
    }
    # what a sweep varies (dataset.foreground_fraction, loss.alpha, ...) shows in TensorBoard's HParams view
    hydra_cfg = HydraConfig.get()
    skip = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    for item in hydra_cfg.overrides.task:
        key = item.lstrip("+~").partition("=")[0]
        value = OmegaConf.select(cfg, key, default=None)
        if key not in run_info and key not in skip and value is not None and not OmegaConf.is_config(value):
            run_info[key] = value
    from hydra.types import RunMode

    sweep_dir = hydra_cfg.sweep.dir if hydra_cfg.mode == RunMode.MULTIRUN else None  # jobs lease GPUs there
    return run_job(OmegaConf.to_container(cfg, resolve=True), hydra_cfg.runtime.output_dir, run_info, sweep_dir)


def _fmt(v: float | None) -> str:
    return "nan" if v is None or v != v else f"{v:.4f}"


def final_summary(result: dict[str, Any], run_dir: Path) -> str:
    """The table printed at the end of a run: best epoch, mean and per-class Dice/IoU, where the files are."""
    best, per_class = result.get("best", {}), result.get("per_class", {})
    lines = [
        f"best {result['monitor']} at epoch {best.get('epoch')}/{result.get('epochs_completed')}: "
        f"val/dice {_fmt(best.get('val/dice'))}  val/iou {_fmt(best.get('val/iou'))}  "
        f"per-image dice {_fmt(best.get('val/dice_per_image'))}",
        f"  {'class':<16} {'dice':>7} {'iou':>7}",
    ]
    for name, dice in per_class.get("dice", {}).items():
        lines.append(f"  {name:<16} {_fmt(dice):>7} {_fmt(per_class['iou'].get(name)):>7}")
    selected = result.get("selected")
    if selected:
        lines.append(f"{selected['checkpoint']} checkpoint (epoch {selected['epoch']}), case means over classes:")
        for key in ("val", "test"):
            if key in result:
                r = result[key]
                lines.append(
                    f"  {r['split']:<6} {r['num_cases']} cases  dice {_fmt(r['dice'])}  iou {_fmt(r['iou'])}  "
                    f"hd95 {_fmt(r['hd95'])} px  nsd@{result['nsd_tolerance']:g}px {_fmt(r['nsd'])}"
                )
    threshold = result.get("threshold")
    if isinstance(threshold, dict) and threshold.get("tuned_on"):
        at_half, tuned = threshold["dice_at_0.5"], threshold["dice_at_tuned"]
        changes = ", ".join(f"{k} {at_half[k]} -> {tuned[k]}" for k in tuned)
        lines.append(
            f"threshold {threshold['value']} (tuned on {threshold['tuned_on']}); pooled dice at 0.5 -> it: {changes}"
        )
    lines.append(f"{result.get('timing', {}).get('total_s')} s; run directory {run_dir}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Entry point; returns the best monitored value so Hydra sweepers (Optuna) can optimise it."""
    from segtrain.config_checks import check_config_types
    from segtrain.job import completed_result

    # a value of the wrong type (optimizer.lr=abc) stops here with its key named (trainer and job: Hydra did)
    check_config_types(
        *(OmegaConf.to_container(cfg[g], resolve=True) for g in ("optimizer", "scheduler")),
        metrics=OmegaConf.to_container(cfg.metrics, resolve=True) if "metrics" in cfg else None,
    )
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    done = completed_result(run_dir, OmegaConf.to_container(cfg, resolve=True)) if main_rank else None
    if done is not None:
        log.info("%s says this job already completed; skipping it", run_dir / "metrics.json")
        return done.get("best", {}).get(cfg.trainer.monitor)
    try:
        result = train(cfg)
    except Exception as err:
        if not main_rank:
            raise
        from segtrain.atomic import WriteError
        from segtrain.engine.records import write_json

        try:  # on a full disk this write fails too: the job's own error is the one to report
            write_json(
                run_dir / "metrics.json",
                {
                    "status": "failed",
                    "error": f"{type(err).__name__}: {err}".splitlines()[0][:500],
                    "loss": cfg.loss.get("name"),
                    "model": cfg.model.get("name"),
                    "dataset": cfg.dataset.get("name"),
                    "seed": cfg.get("seed"),
                    "traceback": traceback.format_exc(limit=8),
                },
            )
        except WriteError as write_err:
            log.error("could not record the failure in metrics.json: %s", write_err)
        raise
    best = result.get("best", {}).get(cfg.trainer.monitor)
    if result and main_rank:
        log.info("\n%s", final_summary(result, run_dir))
    return best


def main() -> None:
    """``python train.py ...``; under torchrun, ranks > 0 leave Hydra's run directory and log to rank 0."""
    if int(os.environ.get("RANK", "0")) > 0 and "-m" not in sys.argv and "--multirun" not in sys.argv:
        scratch = tempfile.mkdtemp(prefix=f"segtrain-rank{os.environ['RANK']}-")
        sys.argv += [f"hydra.run.dir={scratch}", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    hydra_main()


if __name__ == "__main__":
    main()
