"""The common part of every data set: its class description, checked once at construction."""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import Dataset

from segtrain.modes import BINARY, MODES, MULTICLASS, MULTILABEL
from segtrain.registry import Registry

DATASETS = Registry("dataset")


BACKGROUND_KEY = "dataset.background_index"


def check_background_index(value: object, num_classes: int) -> int | None:
    """``dataset.background_index`` as a class index in 0..num_classes-1, or None (every class is an object
    class); anything else is a ValueError naming the key."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_classes:
        raise ValueError(
            f"{BACKGROUND_KEY}={value!r}: expected a class index in 0..{num_classes - 1} (the background class, "
            "e.g. 0 for VOC) or null (every class is an object class, e.g. CamVid's class 0 is sky)"
        )
    return int(value)


class SegDataset(Dataset):
    """Base class: holds and validates ``mode``, ``num_classes``, ``class_names``, ``ignore_index``,
    ``background_index``.

    ``num_classes`` is the number of model output channels: 1 in binary mode (the foreground), C in
    multiclass (background included) and multilabel modes. ``class_names`` has one name per channel.
    ``background_index`` names the multiclass background class (not foreground for oversampling, left out
    of the report's case means), or None where every class is an object class; binary targets are 0/1 with
    0 the background, and multilabel channels are all foreground, so the other modes do not use it.
    """

    def __init__(
        self,
        split: str,
        mode: str,
        num_classes: int,
        class_names: Sequence[str] | None,
        ignore_index: int | None,
        in_channels: int,
        background_index: int | None = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"dataset.mode must be one of {MODES}, got {mode!r}")
        if mode == BINARY and num_classes != 1:
            raise ValueError(
                f"dataset.mode=binary expects dataset.num_classes=1 (one sigmoid output), got {num_classes}"
            )
        if mode != BINARY and num_classes < 2 and mode == MULTICLASS:
            raise ValueError(f"dataset.mode=multiclass expects dataset.num_classes >= 2, got {num_classes}")
        if class_names is None:
            class_names = [f"class_{i}" for i in range(num_classes)]
        class_names = [str(c) for c in class_names]
        if len(class_names) != num_classes:
            raise ValueError(
                f"dataset.class_names has {len(class_names)} names {class_names} but "
                f"dataset.num_classes={num_classes}; give one name per model output channel"
            )
        if mode == MULTILABEL and ignore_index is not None:
            raise ValueError("dataset.ignore_index applies to multiclass and binary modes; set it to null")
        if in_channels not in (1, 3) and not isinstance(in_channels, int):
            raise ValueError(f"dataset.in_channels must be an int, got {in_channels!r}")
        self.split = split
        self.mode = mode
        self.num_classes = int(num_classes)
        self.class_names = class_names
        self.ignore_index = ignore_index
        self.in_channels = int(in_channels)
        self.background_index = check_background_index(background_index, self.num_classes)

    @property
    def crop_background(self) -> int | None:
        """The class foreground oversampling leaves out of the foreground: ``background_index`` in multiclass
        mode, 0 in binary mode (the target's background); multilabel masks do not use it."""
        return self.background_index if self.mode == MULTICLASS else 0

    @classmethod
    def has_split(cls, split: str, **kwargs) -> bool:
        """Whether the data set that ``kwargs`` (a dataset config's keys) describe has ``split``, without
        reading it: how ``dataset.test_split: auto`` finds out whether there is a held-out split."""
        raise NotImplementedError(f"{cls.__name__} does not say which splits it has (has_split)")
