"""segtrain.build: plain config sections -> data sets, loaders, trainer settings; with the cross-group checks of
segtrain.config_checks."""

from __future__ import annotations

import pytest

from segtrain.build import (
    build_datasets,
    build_eval_loader,
    build_loaders,
    build_split,
    split_dataset_config,
    trainer_config,
)
from segtrain.config_checks import check_config

SHAPES = {
    "name": "shapes",
    "mode": "multiclass",
    "num_classes": 4,
    "class_names": ["background", "ellipse", "rectangle", "triangle"],
    "in_channels": 3,
    "length": {"train": 6, "val": 3, "test": 0},
    "image_size": 32,
    "loader": {"batch_size": 4, "val_batch_size": 2, "num_workers": 0},
}
MODEL = {"name": "unet", "classes": 4, "in_channels": 3}


def test_split_dataset_config_separates_name_keywords_and_loader_without_changing_its_input():
    name, kwargs, loader = split_dataset_config(SHAPES)
    assert name == "shapes" and "name" not in kwargs and "loader" not in kwargs
    assert loader == SHAPES["loader"] and kwargs["image_size"] == 32 and "name" in SHAPES
    with pytest.raises(ValueError, match="no 'name'"):
        split_dataset_config({"mode": "binary"})


def test_datasets_and_loaders_follow_the_loader_settings():
    train_set, val_set = build_datasets(SHAPES)
    assert (len(train_set), len(val_set)) == (6, 3)
    train, val = build_loaders(SHAPES, train_set, val_set, seed=0)
    assert (train.batch_size, val.batch_size, train.drop_last) == (4, 2, True)
    assert build_eval_loader(SHAPES, val_set).batch_size == 2  # val_batch_size
    assert build_eval_loader(SHAPES, val_set, batch_size=3, num_workers=0).batch_size == 3
    with pytest.raises(ValueError, match="dataset 'shapes' split 'test' is empty"):
        build_split(SHAPES, "test")


def test_check_config_names_the_disagreeing_keys():
    check_config({"model": MODEL, "dataset": SHAPES, "loss": {"name": "dice"}})
    with pytest.raises(ValueError, match="model.classes=3 but dataset 'shapes' has num_classes=4"):
        check_config({"model": {**MODEL, "classes": 3}, "dataset": SHAPES, "loss": {}})
    with pytest.raises(ValueError, match="model.in_channels=1 but dataset 'shapes' has in_channels=3"):
        check_config({"model": {**MODEL, "in_channels": 1}, "dataset": SHAPES, "loss": {}})
    with pytest.raises(ValueError, match="loss.mode=binary but dataset.mode=multiclass"):
        check_config({"model": MODEL, "dataset": SHAPES, "loss": {"mode": "binary"}})


def test_trainer_config_lists_the_accepted_keys_on_an_unknown_one():
    assert trainer_config({"max_epochs": 2}).max_epochs == 2
    with pytest.raises(TypeError, match="unknown key.*trainer.max_epoch; accepted: .*max_epochs"):
        trainer_config({"max_epoch": 2})
