"""A stand-in for train.py in the fair-sweep tests: a Hydra app that "trains" in no time.

Like tests/halving_app/fake_app.py (resumes from metrics.json's epochs_completed, pauses at
job.stop_at_epoch, writes per_case.csv and appends "<job dir> <from> <to>" to <sweep dir>/trained.log),
but its loss is a config group whose options carry a search space (conf/loss/*.yaml ``search``). A case's
Dice is quality(loss, knob, lr) * ramp(epoch) + case difficulty + noise(config, seed, case), with
n_test_cases held-out cases scored the same way. Every read of a per_case.csv is not the app's business: the
tests check what the sweep read.
"""

from __future__ import annotations

import csv
import json
import math
import zlib
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

BASE = {"one": 0.70, "three": 0.60, "nine": 0.55, "pairs": 0.60}


def rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def quality(cfg: DictConfig) -> float:
    """Tuning pays: 'three' is best at knob 3, 'nine' at knob 3 and knob2 1; lr 0.01 a little better."""
    q = BASE[cfg.loss.name] + 0.08 * (float(cfg.loss.knob) - 2) + 0.03 * math.log10(cfg.optimizer.lr / 0.003)
    return q - 0.05 * abs(float(cfg.loss.get("knob2", 1)) - 1)


def scores(cfg: DictConfig, epoch: int, cases: list[str]) -> list[float]:
    ramp = 1 - 0.6 * math.exp(-epoch / 2.0)
    label = f"{cfg.loss.name}/{cfg.loss.knob}/{cfg.loss.get('knob2')}/{cfg.optimizer.lr}"
    out = []
    for case in cases:
        difficulty = rng("case", case).normal(0, 0.08)
        noise = rng(label, cfg.seed, case).normal(0, 0.03)
        out.append(float(np.clip(quality(cfg) * ramp + difficulty + noise, 0, 1)))
    return out


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics_path = run_dir / "metrics.json"
    start = json.loads(metrics_path.read_text())["epochs_completed"] if metrics_path.exists() else 0
    end = min(cfg.trainer.max_epochs, cfg.job.stop_at_epoch or cfg.trainer.max_epochs)
    if start >= end:
        return 0.0
    done = end >= cfg.trainer.max_epochs
    with (run_dir / "per_case.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "case", "class", "dice", "iou", "hd95", "nsd", "cldice", "tp", "fp", "fn",
                    "ref_pixels", "pred_pixels"])  # fmt: skip
        splits = {"val": [f"case{i:02d}" for i in range(cfg.n_cases)]}
        if done:  # like the real job: a paused job is scored on val alone
            splits["test"] = [f"test{i:02d}" for i in range(cfg.n_test_cases)]
        for split, cases in splits.items():
            for case, d in zip(cases, scores(cfg, end, cases), strict=True):
                w.writerow([split, case, "fg", d, d / (2 - d), 1.0, d, "", 10, 1, 1, 11, 11])
    metrics_path.write_text(json.dumps({
        "status": "completed" if done else "paused", "epochs_completed": end, "max_epochs": cfg.trainer.max_epochs,
        "mode": "binary", "timing": {"train_s": 0.5 * end},
    }))  # fmt: skip
    with (run_dir.parent / "trained.log").open("a") as f:
        f.write(f"{run_dir.name} {start} {end}\n")
    return 0.0


if __name__ == "__main__":
    main()
