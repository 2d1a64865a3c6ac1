"""The data root: $SEGTRAIN_DATA, else <repo>/data; never a folder found beside the checkout."""

from pathlib import Path

import segtrain.cli as cli


def test_data_root_is_the_variable_else_repo_data_even_with_a_shared_folder_beside(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (tmp_path / "shared" / "data").mkdir(parents=True)  # what a checkout beside a data folder would find
    monkeypatch.setattr(cli, "PROJECT_ROOT", repo)
    monkeypatch.delenv("SEGTRAIN_DATA", raising=False)
    assert Path(cli._default_data_dir()) == repo / "data"
    monkeypatch.setenv("SEGTRAIN_DATA", str(tmp_path / "mine"))
    assert Path(cli._default_data_dir()) == tmp_path / "mine"


def test_paths_data_dir_resolves_from_the_variable_and_the_resolver(monkeypatch):
    from hydra import compose, initialize_config_dir

    monkeypatch.delenv("SEGTRAIN_DATA", raising=False)
    with initialize_config_dir(version_base="1.3", config_dir=str(cli.CONFIG_DIR)):
        assert compose("train").paths.data_dir == str(cli.PROJECT_ROOT / "data")
    monkeypatch.setenv("SEGTRAIN_DATA", "/elsewhere/data")
    with initialize_config_dir(version_base="1.3", config_dir=str(cli.CONFIG_DIR)):
        cfg = compose("train", overrides=["dataset=isbi_em"])
        assert cfg.paths.data_dir == "/elsewhere/data" and cfg.dataset.root == "/elsewhere/data/isbi_em"
