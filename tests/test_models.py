from pathlib import Path

import pytest
import torch
import yaml

from segtrain.models import available_models, build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"
# smallest input each architecture accepts (PAN pools to 1/32 and below)
SIZE = {"pan": 128}


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_every_model_config_builds_and_runs_a_forward_pass(name):
    cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    cfg.update(in_channels=3, classes=5)
    assert cfg["encoder_weights"] is None, "defaults must not need a download"
    model = build_model(cfg.pop("name"), **cfg).eval()
    size = SIZE.get(name, 64)
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 5, size, size)


def test_every_registered_model_has_a_config_file_and_back():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == available_models()
    assert len(available_models()) == 12


def test_unknown_model_keyword_is_refused_with_the_accepted_ones():
    with pytest.raises(TypeError, match=r"unknown keyword\(s\) \['decoder_chanels'\]; accepted: .*decoder_channels"):
        build_model("unet", classes=2, decoder_chanels=(8, 8, 8, 8, 8))


def test_missing_local_encoder_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_model("unet", classes=2, encoder_weights=str(tmp_path / "missing.pth"))


def test_local_encoder_weights_are_loaded(tmp_path):
    src = build_model("unet", classes=2)
    path = tmp_path / "enc.pth"
    torch.save(src.encoder.state_dict(), path)
    dst = build_model("unet", classes=2, encoder_weights=str(path))
    for a, b in zip(src.encoder.state_dict().values(), dst.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_pretrained_weights_that_cannot_be_downloaded_give_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    import segmentation_models_pytorch.encoders as enc

    monkeypatch.setattr(enc, "load_state_dict_from_url", offline, raising=False)
    with pytest.raises(RuntimeError, match="Nothing can be downloaded on this machine"):
        build_model("unet", classes=2, encoder_weights="imagenet")
