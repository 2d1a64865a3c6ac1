"""Start-up type check of trainer, optimizer and scheduler values: the key is named, nothing trains."""

import pytest
from conftest import TINY, run_train

from segtrain.config_checks import check_config_types

TRAINER = {"max_epochs": 2, "grad_clip": None, "deterministic": False, "resume": "auto"}
OPTIMIZER = {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4}
SCHEDULER = {"name": "poly", "power": 0.9, "warmup_steps": 0}


def test_the_default_values_and_ints_for_floats_pass():
    check_config_types(TRAINER, OPTIMIZER, SCHEDULER)
    check_config_types({**TRAINER, "grad_clip": 1}, {**OPTIMIZER, "lr": 1, "betas": [0.9, 0.99]}, SCHEDULER)
    check_config_types(TRAINER, {"name": "sgd", "lr": 0.1, "nesterov": True}, {"name": "step", "step_size": 10})
    check_config_types({**TRAINER, "precision": 32}, OPTIMIZER, SCHEDULER)  # trainer.precision=32 is a YAML int


@pytest.mark.parametrize(
    "trainer, optimizer, scheduler, message",
    [
        ({}, {"lr": "abc"}, {}, r"optimizer.lr='abc' is a str; it must be a number"),
        ({"max_epochs": 2.5}, {}, {}, r"trainer.max_epochs=2.5 is a float; it must be an integer"),
        ({"max_epochs": True}, {}, {}, r"trainer.max_epochs=True is a bool; it must be an integer"),
        ({"deterministic": "yes"}, {}, {}, r"trainer.deterministic='yes' is a str; it must be true or false"),
        ({"grad_clip": "1.0"}, {}, {}, r"trainer.grad_clip='1.0' is a str; it must be a number or null"),
        ({}, {"betas": [0.9]}, {}, r"optimizer.betas=\[0.9\] is a list"),
        ({}, {}, {"warmup_steps": 1.5}, r"scheduler.warmup_steps=1.5 is a float; it must be an integer"),
        ({"monitor": 3}, {}, {}, r"trainer.monitor=3 is an int; it must be a string"),
        ({}, {"name": 3}, {}, r"optimizer.name=3 must be one of: adam, adamw, sgd"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(trainer, optimizer, scheduler, message):
    with pytest.raises(TypeError, match=message):
        check_config_types({**TRAINER, **trainer}, {**OPTIMIZER, **optimizer}, {**SCHEDULER, **scheduler})


def test_train_py_with_a_string_learning_rate_stops_at_start_up_naming_the_key(tmp_path):
    proc = run_train([*TINY, "optimizer.lr=abc"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "optimizer.lr='abc' is a str; it must be a number" in proc.stderr
    assert "not supported between instances" not in proc.stderr
    assert not list((tmp_path / "outputs").rglob("metrics.json"))  # nothing ran


def test_precision_32_typed_on_the_command_line_is_accepted():
    from segtrain.engine import TrainerConfig

    assert TrainerConfig(precision=32).precision == "32"
