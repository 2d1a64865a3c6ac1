"""Config sections -> objects: data sets, loaders, trainer settings (the checks are in config_checks.py).

Plain dicts in, no Hydra: ``cli.py`` passes ``OmegaConf.to_container(cfg.<group>, resolve=True)``, the
scripts pass the sections of a composed config or of a checkpoint's stored config. torch, smp and the data
sets load inside the functions, so importing this module is cheap (``python train.py --help`` stays fast).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset

    from segtrain.schemas import JobConfig, TrainerConfig

DEFAULT_BATCH_SIZE = 8
# dataset.test_split: "auto" evaluates the "test" split at the end of a job where the data set has one
TEST_SPLIT_AUTO, DEFAULT_TEST_SPLIT = "auto", "test"


def split_dataset_config(dataset: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(registered name, constructor keywords, loader settings) of a ``dataset`` section; ``test_split``
    (which split the end-of-job evaluation holds out, ``resolve_test_split``) is not a constructor keyword."""
    if "name" not in dataset:
        raise ValueError(f"the dataset config has no 'name' (keys: {sorted(dataset)}); expected a registered data set")
    kwargs = dict(dataset)
    name = str(kwargs.pop("name"))
    loader = dict(kwargs.pop("loader", None) or {})
    kwargs.pop("test_split", None)
    return name, kwargs, loader


def resolve_test_split(dataset: Mapping[str, Any]) -> tuple[str | None, str]:
    """(the held-out split a job evaluates at its end, or None; why, in words) from ``dataset.test_split``.

    ``auto`` (the default): ``test`` where the data set has that split (shapes: ``length.test``; folder
    data sets: ``images/test``), else None. A split name: that split, which must exist (``build_split``
    then fails naming the folder or key). null: none.
    """
    from segtrain.data.base import DATASETS

    value = dataset.get("test_split", TEST_SPLIT_AUTO)
    if value is None:
        return None, "dataset.test_split=null: no held-out split evaluated"
    if not isinstance(value, str) or not value:
        raise ValueError(f"dataset.test_split={value!r} must be auto, a split name (e.g. test) or null")
    if value != TEST_SPLIT_AUTO:
        return value, f"dataset.test_split={value}"
    name, kwargs, _ = split_dataset_config(dataset)
    if DATASETS.get(name).has_split(DEFAULT_TEST_SPLIT, **kwargs):
        return DEFAULT_TEST_SPLIT, f"dataset '{name}' has a '{DEFAULT_TEST_SPLIT}' split"
    return None, f"dataset '{name}' has no '{DEFAULT_TEST_SPLIT}' split (dataset.test_split=auto): no held-out split"


def build_split(dataset: Mapping[str, Any], split: str) -> Dataset:
    """The ``split`` ("train", "val", "test") of the data set a ``dataset`` section describes; an empty
    split is an error that names the data set and the split."""
    from segtrain.data import build_dataset

    name, kwargs, _ = split_dataset_config(dataset)
    data = build_dataset(name, split=split, **kwargs)
    if len(data) == 0:
        raise ValueError(f"dataset '{name}' split '{split}' is empty")
    return data


def build_datasets(dataset: Mapping[str, Any]) -> tuple[Dataset, Dataset]:
    """The train and val data sets of a ``dataset`` section."""
    return build_split(dataset, "train"), build_split(dataset, "val")


def _batch_sizes(loader: dict[str, Any]) -> tuple[int, int]:
    """Pops (batch_size, val_batch_size) from ``loader``; val_batch_size defaults to batch_size."""
    batch_size = loader.pop("batch_size", None)
    batch_size = int(DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
    val_batch_size = loader.pop("val_batch_size", None)
    return batch_size, int(batch_size if val_batch_size is None else val_batch_size)


def build_loaders(
    dataset: Mapping[str, Any], train_set: Dataset, val_set: Dataset, seed: int, rank: int = 0, world_size: int = 1
) -> tuple[DataLoader, DataLoader]:
    """Train and val loaders with the ``dataset`` section's ``loader`` settings, seeded by ``seed``; under
    torchrun (``world_size`` > 1) each rank gets its shard of both."""
    from torch.utils.data import DistributedSampler

    from segtrain.data import build_loader
    from segtrain.engine.distributed import ShardSampler

    _, _, loader = split_dataset_config(dataset)
    batch_size, val_batch_size = _batch_sizes(loader)
    drop_last = len(train_set) > batch_size * world_size
    train_sampler = val_sampler = None
    if world_size > 1:
        train_sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=seed, drop_last=drop_last)
        val_sampler = ShardSampler(len(val_set), rank, world_size)
    train = build_loader(
        train_set, batch_size, shuffle=True, drop_last=drop_last, seed=seed, sampler=train_sampler, rank=rank, **loader
    )
    val = build_loader(val_set, val_batch_size, shuffle=False, seed=seed, sampler=val_sampler, rank=rank, **loader)
    return train, val


def build_eval_loader(
    dataset: Mapping[str, Any], data: Dataset, batch_size: int | None = None, num_workers: int | None = None
) -> DataLoader:
    """An unshuffled loader over ``data`` with the ``dataset`` section's loader settings; ``batch_size``
    defaults to its ``val_batch_size``, else its ``batch_size``; ``num_workers`` replaces its own."""
    from segtrain.data import build_loader

    _, _, loader = split_dataset_config(dataset)
    _, val_batch_size = _batch_sizes(loader)
    if num_workers is not None:
        loader["num_workers"] = int(num_workers)
    return build_loader(data, int(batch_size or val_batch_size), shuffle=False, **loader)


def trainer_config(trainer: Mapping[str, Any]) -> TrainerConfig:
    """The ``trainer`` section as a TrainerConfig; an unknown key is an error listing the accepted ones (a
    composed config has none: Hydra checks the section against the schema, segtrain/schemas.py)."""
    from segtrain.schemas import TrainerConfig, build

    return build(TrainerConfig, dict(trainer), "trainer")


def job_config(job: Mapping[str, Any] | None) -> JobConfig:
    """The ``job`` section as a JobConfig (defaults where the config has none)."""
    from segtrain.schemas import JobConfig, build

    return build(JobConfig, dict(job or {}), "job")
