"""Every registry and its config group stay in step: each registered name has a YAML file and each
YAML file builds (the loss group is checked in test_loss_configs.py, models in test_models.py)."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from segtrain.build import split_dataset_config
from segtrain.cli import CONFIG_DIR
from segtrain.data import available_datasets, build_dataset
from segtrain.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler

GROUPS = Path(CONFIG_DIR)


def compose_train(overrides: list[str]):
    with initialize_config_dir(str(GROUPS), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def yaml_names(group: str) -> list[str]:
    return sorted(p.stem for p in (GROUPS / group).glob("*.yaml"))


def test_every_optimizer_and_scheduler_has_a_config_and_back():
    assert yaml_names("optimizer") == OPTIMIZERS.names()
    assert yaml_names("scheduler") == SCHEDULERS.names()


@pytest.mark.parametrize("name", yaml_names("optimizer"))
def test_optimizer_configs_build(name):
    cfg = compose_train([f"optimizer={name}"])
    kw = dict(cfg.optimizer)
    opt = build_optimizer(kw.pop("name"), [torch.nn.Parameter(torch.zeros(2))], **kw)
    assert opt.param_groups[0]["lr"] == cfg.optimizer.lr


@pytest.mark.parametrize("name", yaml_names("scheduler"))
def test_scheduler_configs_build_and_keep_the_lr_positive(name):
    cfg = compose_train([f"scheduler={name}"])
    kw = dict(cfg.scheduler)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sched = build_scheduler(kw.pop("name"), opt, total_steps=200, **kw)
    lrs = []
    for _ in range(200):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(lr >= 0 for lr in lrs) and max(lrs) <= 0.1 + 1e-12


def test_poly_schedule_follows_its_formula():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    sched = build_scheduler("poly", opt, total_steps=10, power=0.9)
    for t in range(1, 10):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx((1 - t / 10) ** 0.9)


def test_every_dataset_config_names_a_registered_dataset():
    for name in yaml_names("dataset"):
        cfg = compose_train([f"dataset={name}"])
        assert cfg.dataset.name in available_datasets(), name


def test_synthetic_dataset_configs_build():
    for name in ("shapes", "shapes_binary"):
        section = OmegaConf.to_container(compose_train([f"dataset={name}"]).dataset, resolve=True)
        ds_name, kw, _ = split_dataset_config(section)  # leaves out loader and test_split
        ds = build_dataset(ds_name, split="val", **kw)
        assert len(ds) > 0 and ds[0]["image"].shape[0] == 3


@pytest.mark.parametrize("model", yaml_names("model"))
def test_model_configs_follow_the_dataset(model):
    cfg = compose_train([f"model={model}", "dataset=shapes_binary"])
    assert cfg.model.classes == 1 and cfg.model.in_channels == 3
    assert cfg.model.encoder_weights is None


def test_trainer_and_job_defaults_live_once_the_yaml_files_and_the_schemas_agree():
    """configs/trainer/default.yaml and configs/job/default.yaml hold the same keys and defaults as their
    schemas (segtrain/schemas.py): a key missing from either, or a default that differs, is a second source of
    truth. (Hydra would fill a key the YAML lacks from the schema; the YAML lists every key for its reader.)"""
    from dataclasses import asdict

    import yaml

    from segtrain.schemas import SCHEMAS

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        composed = compose("train")
    for group, schema in SCHEMAS.items():
        assert OmegaConf.to_container(composed[group], resolve=True) == asdict(schema()), group
        written = yaml.safe_load((CONFIG_DIR / group / "default.yaml").read_text())
        assert written.pop("defaults") == ["schema", "_self_"], group
        assert written == asdict(schema()), group
