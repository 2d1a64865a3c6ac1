"""Reading images and masks from disk, with errors that name the file and say what was expected.

PIL reads every common format (PNG, JPEG, TIFF, BMP) and, unlike OpenCV, refuses truncated files
instead of filling the missing part with grey. PIL narrows 16-bit colour images to 8 bits, so those
(and only those) are read with OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MASK_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp")

# PIL modes that np.asarray turns into the stored values unchanged.
_DIRECT_MODES = {"L", "I;16", "I;16B", "I;16L", "I", "RGB", "RGBA", "LA", "1"}


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist.")
    try:
        img = Image.open(path)
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(
            f"Cannot read {what} file {path}: {exc}. Expected a complete PNG, JPEG, TIFF or BMP file; "
            "it may be truncated or not an image."
        ) from exc
    return img


def is_16bit(img: Image.Image) -> bool:
    """Whether ``read_image`` returns 16-bit pixels for this opened (header-only) file."""
    return img.mode.startswith("I") or (img.mode in ("RGB", "RGBA") and _is_16bit_colour(img))


def _is_16bit_colour(img: Image.Image) -> bool:
    for tile in getattr(img, "tile", None) or []:
        args = tile[3] if isinstance(tile, tuple) else getattr(tile, "args", None)
        rawmode = args[0] if isinstance(args, tuple) else args
        if isinstance(rawmode, str) and rawmode.startswith(("RGB;16", "RGBA;16", "RGBX;16")):
            return True
    return False


def _read_cv2(path: Path, what: str) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError(
            f"Cannot read {what} file {path}: OpenCV could not decode it (truncated or not an image?)."
        )
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return arr


def read_image(path: str | Path, in_channels: int = 3) -> np.ndarray:
    """Read an image as uint8 or uint16, H x W x ``in_channels``.

    Grayscale images are repeated to 3 channels when ``in_channels`` is 3; an alpha channel is dropped
    (segmentation inputs have none). A colour image where ``in_channels`` is 1 is an error: converting
    it to grey would hide a configuration mistake.
    """
    path = Path(path)
    img = _open(path, "image")
    if img.mode in ("RGB", "RGBA") and _is_16bit_colour(img):
        arr = _read_cv2(path, "image")
    elif img.mode == "P" or img.mode == "PA":
        arr = np.asarray(img.convert("RGB"))
    elif img.mode in _DIRECT_MODES:
        arr = np.asarray(img)
    elif img.mode == "F":
        raise ValueError(
            f"Image file {path} holds 32-bit float pixels; expected 8- or 16-bit integer images "
            "(scaled by 255 or 65535 before normalisation)."
        )
    else:
        arr = np.asarray(img.convert("RGB"))
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype == np.int32:  # PIL's mode "I" for 16-bit files
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError(
                f"Image file {path} has values outside 0..65535; expected an 8- or 16-bit image."
            )
        arr = arr.astype(np.uint16)
    if arr.ndim == 3 and arr.shape[2] in (2, 4):  # LA / RGBA: drop alpha
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if in_channels == 1:
        if arr.ndim == 3:
            raise ValueError(
                f"Image file {path} has {arr.shape[2]} channels but dataset.in_channels=1 expects a "
                "single-channel (grayscale) image; set dataset.in_channels=3."
            )
        return arr[..., None]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], in_channels, axis=2)
    if arr.shape[2] != in_channels:
        raise ValueError(
            f"Image file {path} has {arr.shape[2]} channels but dataset.in_channels={in_channels}."
        )
    return np.ascontiguousarray(arr)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask with its stored values: H x W (indices; palette PNGs give their indices) or H x W x 3.

    Colour masks come back as H x W x 3 RGB so the caller can map them through a palette or refuse them.
    """
    path = Path(path)
    img = _open(path, "mask")
    if img.mode in ("RGB", "RGBA") and _is_16bit_colour(img):
        arr = _read_cv2(path, "mask")
    elif img.mode in ("P", "L", "1") or img.mode.startswith("I"):
        arr = np.asarray(img)  # "P": the palette indices are the class indices (VOC)
    elif img.mode in ("RGB", "RGBA", "LA"):
        arr = np.asarray(img)
    else:
        raise ValueError(
            f"Mask file {path} has PIL mode {img.mode!r}; expected an 8- or 16-bit single-channel "
            "(or palette / RGB colour) image of class indices."
        )
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.int32:
        arr = arr.astype(np.int64)
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        if np.any(arr[..., -1] != arr[..., -1].flat[0]):
            raise ValueError(
                f"Mask file {path} has a varying alpha channel; expected a mask without transparency."
            )
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return arr


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"Cannot read file {path}: {exc}") from exc
    return h, w


def dtype_max(arr: np.ndarray) -> float:
    """The value that maps to 1.0: 255 for 8-bit images, 65535 for 16-bit ones."""
    if arr.dtype == np.uint8:
        return 255.0
    if arr.dtype == np.uint16:
        return 65535.0
    raise ValueError(f"Expected a uint8 or uint16 image, got dtype {arr.dtype}.")


def find_files(directory: Path, extensions: Sequence[str], recursive: bool = False) -> list[Path]:
    """Files in ``directory`` whose extension (case-insensitive) is one of ``extensions``, sorted."""
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in directory.glob(pattern) if p.is_file() and p.suffix.lower() in exts)
