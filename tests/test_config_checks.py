"""Start-up type checks, the key named and nothing trained: trainer and job values by Hydra against their
schemas (segtrain/schemas.py), optimizer and scheduler values against the constructor that takes them."""

import pytest
from conftest import ROOT, TINY, run_train

from segtrain.config_checks import check_config_types
from segtrain.run_config import ADDED_KEYS, EVALUATION_KEYS, OPERATIONAL_KEYS

OPTIMIZER = {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4}
SCHEDULER = {"name": "poly", "power": 0.9, "warmup_steps": 0}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def test_the_default_values_and_ints_for_floats_pass():
    check_config_types(OPTIMIZER, SCHEDULER)
    check_config_types({**OPTIMIZER, "lr": 1, "betas": [0.9, 0.99]}, SCHEDULER)
    check_config_types({"name": "sgd", "lr": 0.1, "nesterov": True}, {"name": "step", "step_size": 10})
    cfg = compose(["trainer.precision=32", "trainer.grad_clip=1", "job.num_threads=2"])
    assert (cfg.trainer.precision, cfg.trainer.grad_clip, cfg.job.num_threads) == ("32", 1.0, 2)


@pytest.mark.parametrize(
    "optimizer, scheduler, message",
    [
        ({"lr": "abc"}, {}, r"optimizer.lr='abc' is a str; it must be a number"),
        ({"betas": [0.9]}, {}, r"optimizer.betas=\[0.9\] is a list"),
        ({}, {"warmup_steps": 1.5}, r"scheduler.warmup_steps=1.5 is a float; it must be an integer"),
        ({"name": 3}, {}, r"optimizer.name=3 must be one of: adam, adamw, sgd"),
    ],
)
def test_an_optimizer_or_scheduler_value_of_the_wrong_type_names_the_key(optimizer, scheduler, message):
    with pytest.raises(TypeError, match=message):
        check_config_types({**OPTIMIZER, **optimizer}, {**SCHEDULER, **scheduler})


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.max_epochs=abc", "Value 'abc' of type 'str' could not be converted to Integer"),
        ("trainer.max_epochs=2.5", "Value '2.5' of type 'float' could not be converted to Integer"),
        ("trainer.deterministic=maybe", "Value 'maybe' is not a valid bool"),
        ("job.num_threads=many", "Value 'many' of type 'str' could not be converted to Integer"),
        ("trainer.no_such_key=1", "Key 'no_such_key' not in 'TrainerConfig'"),
        ("trainer.select=best", "Key 'select' not in 'TrainerConfig'"),  # moved to job.select
    ],
)
def test_hydra_checks_trainer_and_job_values_against_their_schemas(override, message):
    from omegaconf.errors import OmegaConfBaseException

    with pytest.raises((OmegaConfBaseException, Exception)) as err:
        compose([override])
    text = f"{err.value} {err.value.__cause__}"
    assert message in text and override.split("=")[0] in text, text


def test_train_py_with_a_wrong_type_stops_at_start_up_naming_the_key(tmp_path):
    proc = run_train([*TINY, "optimizer.lr=abc"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "optimizer.lr='abc' is a str; it must be a number" in proc.stderr
    assert "not supported between instances" not in proc.stderr
    proc = run_train([*TINY, "trainer.max_epochs=two"], tmp_path, check=False)
    assert proc.returncode != 0 and "trainer.max_epochs" in proc.stderr and "Integer" in proc.stderr
    assert not list((tmp_path / "outputs").rglob("metrics.json"))  # nothing ran


def test_precision_32_typed_on_the_command_line_is_accepted():
    from segtrain.engine import TrainerConfig

    assert TrainerConfig(precision=32).precision == "32"


def test_which_keys_change_results_is_read_from_the_schemas():
    assert {"job.stop_at_epoch", "job.num_threads", "trainer.resume", "trainer.checkpoint_every_minutes"} <= set(
        OPERATIONAL_KEYS
    )
    assert {"job.select", "job.tune_threshold", "metrics"} <= set(EVALUATION_KEYS)
    assert "trainer.max_epochs" not in OPERATIONAL_KEYS and "trainer.grad_clip" not in OPERATIONAL_KEYS
    assert ADDED_KEYS["job.tune_threshold"] is False


def test_a_key_of_the_trainer_that_moved_to_job_says_where_it_went():
    from segtrain.build import trainer_config

    with pytest.raises(TypeError, match=r"unknown key\(s\) trainer.select \(trainer.select is now job.select\)"):
        trainer_config({"max_epochs": 2, "select": "best"})
