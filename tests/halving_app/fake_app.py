"""A stand-in for train.py in the successive-halving tests: a Hydra app that "trains" in no time.

Like the real trainer it resumes from what its directory holds (metrics.json's epochs_completed, for
last.pt), trains to job.stop_at_epoch (status paused) or trainer.max_epochs (completed), and writes
per_case.csv with the val split's per-case scores at the epoch reached (and n_test_cases test rows). A case's Dice is
quality(loss) * ramp(epoch) + case difficulty + noise(loss, seed, case): deterministic, paired across
configurations. Every invocation that trains appends "<job dir> <from> <to>" to <sweep dir>/trained.log.
loss=boom fails; FAKE_APP_DIE_AT=<loss>,<seed>,<epochs> kills the whole process there (a crashed sweep).
"""

from __future__ import annotations

import csv
import json
import math
import os
import zlib
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

QUALITY = {"a": 0.80, "b": 0.78, "c": 0.62, "d": 0.55, "e": 0.50, "f": 0.45, "g": 0.40, "h": 0.35, "i": 0.30}
RATE = {"a": 3.0, "b": 1.0}  # epochs to most of the final quality (b learns fastest); 2.0 for the others


def rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def scores(loss: str, seed: int, epoch: int, cases: list[str]) -> list[float]:
    ramp = 1 - 0.6 * math.exp(-epoch / RATE.get(loss, 2.0))
    out = []
    for case in cases:
        difficulty = rng("case", case).normal(0, 0.08)
        noise = rng(loss, seed, case).normal(0, 0.04)
        out.append(float(np.clip(QUALITY[loss] * ramp + difficulty + noise, 0, 1)))
    return out


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.loss == "boom":
        raise RuntimeError("this loss always fails")
    metrics_path = run_dir / "metrics.json"
    start = json.loads(metrics_path.read_text())["epochs_completed"] if metrics_path.exists() else 0
    end = min(cfg.trainer.max_epochs, cfg.job.stop_at_epoch or cfg.trainer.max_epochs)
    if start >= end:
        return 0.0
    die = os.environ.get("FAKE_APP_DIE_AT", "")
    if die == f"{cfg.loss},{cfg.seed},{end}":
        os._exit(3)
    cases = [f"case{i:02d}" for i in range(cfg.n_cases)]
    if cfg.dataset.fold is not None:  # 3 folds: each case in one
        cases = [c for i, c in enumerate(cases) if i % 3 == int(cfg.dataset.fold)]
    values = scores(cfg.loss, cfg.seed, end, cases)
    with (run_dir / "per_case.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "case", "class", "dice", "iou", "hd95", "nsd", "cldice", "tp", "fp", "fn",
                    "ref_pixels", "pred_pixels"])  # fmt: skip
        for case, d in zip(cases, values, strict=True):
            w.writerow(["val", case, "fg", d, d / (2 - d), 1.0, d, "", 10, 1, 1, 11, 11])
        test_cases = [f"test{i:02d}" for i in range(cfg.n_test_cases)]
        for case, d in zip(test_cases, scores(cfg.loss, cfg.seed, end, test_cases), strict=True):
            w.writerow(["test", case, "fg", d, d / (2 - d), 1.0, d, "", 10, 1, 1, 11, 11])
    status = "completed" if end >= cfg.trainer.max_epochs else "paused"
    metrics_path.write_text(json.dumps({"status": status, "epochs_completed": end,
                                        "max_epochs": cfg.trainer.max_epochs, "mode": "binary"}))  # fmt: skip
    with (run_dir.parent / "trained.log").open("a") as f:
        f.write(f"{run_dir.name} {start} {end}\n")
    return float(np.mean(values))


if __name__ == "__main__":
    main()
