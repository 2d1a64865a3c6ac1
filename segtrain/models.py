"""segmentation-models-pytorch architectures behind the ``model`` registry.

``build_model(name, classes=..., in_channels=..., encoder_name=..., encoder_weights=...)`` returns an
``nn.Module`` mapping N x in_channels x H x W images to N x classes x H x W raw logits.
``encoder_weights`` is ``null`` (random init, the default: nothing can be downloaded at run time), a
name smp knows (``imagenet``; needs the file in torch's hub cache or a network) or a path to a local
``.pth`` state dict of the encoder.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from segtrain.registry import Registry

MODELS = Registry("model")

ARCHITECTURES = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "linknet": "Linknet",
    "manet": "MAnet",
    "pan": "PAN",
    "pspnet": "PSPNet",
    "deeplabv3": "DeepLabV3",
    "deeplabv3plus": "DeepLabV3Plus",
    "upernet": "UPerNet",
    "segformer": "Segformer",
    "dpt": "DPT",
}
for _name, _cls in ARCHITECTURES.items():
    MODELS.register(_name)(getattr(smp, _cls))


def available_models() -> list[str]:
    return MODELS.names()


def build_model(
    name: str,
    classes: int,
    in_channels: int = 3,
    encoder_name: str = "resnet18",
    encoder_weights: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build architecture ``name``; other keywords go to the smp class (checked against its signature).

    Encoder-specific keywords that smp forwards to timm (e.g. ``dynamic_img_size`` for ViT encoders)
    are accepted for architectures whose encoder is a timm one (``tu-`` prefix).
    """
    cls = MODELS.get(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown and not encoder_name.startswith("tu-"):
        raise TypeError(f"model '{name}' got unknown keyword(s) {unknown}; accepted: {', '.join(accepted)}")
    local_file = None
    if encoder_weights is not None and (os.sep in str(encoder_weights) or str(encoder_weights).endswith(".pth")):
        local_file = Path(encoder_weights).expanduser()
        if not local_file.is_file():
            raise FileNotFoundError(
                f"model.encoder_weights={encoder_weights!r}: no such file. Give a path to a state dict of the "
                f"'{encoder_name}' encoder, a name smp knows (e.g. imagenet) or null for random initialisation"
            )
        encoder_weights = None
    try:
        model = cls(
            encoder_name=encoder_name,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=classes,
            **kwargs,
        )
    except (OSError, RuntimeError, ConnectionError) as err:  # a failed download surfaces as one of these
        if encoder_weights is None:
            raise
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        raise RuntimeError(
            f"Could not load pretrained weights model.encoder_weights={encoder_weights!r} for encoder "
            f"'{encoder_name}': {err}. Nothing can be downloaded on this machine: put the weight file in "
            f"{hub} (torch's hub cache, set TORCH_HOME to move it), pass a local file with "
            f"model.encoder_weights=/path/to/encoder.pth, or train from scratch with model.encoder_weights=null"
        ) from err
    if local_file is not None:
        state = torch.load(local_file, map_location="cpu", weights_only=True)
        own = model.encoder.state_dict()
        # a classifier's head (e.g. ImageNet 'fc.') is not part of a segmentation encoder
        unexpected = [k for k in state if k not in own and not k.startswith(("fc.", "classifier.", "head."))]
        missing = [k for k in own if k not in state]
        if unexpected or missing:
            raise ValueError(
                f"{local_file} does not fit encoder '{encoder_name}': {len(missing)} missing and "
                f"{len(unexpected)} unexpected keys (e.g. {(unexpected or missing)[:3]})"
            )
        nn.Module.load_state_dict(model.encoder, {k: v for k, v in state.items() if k in own})
    return model
