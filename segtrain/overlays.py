"""Drawing class maps: a fixed palette, colour blends over the image, and the training overlays grid."""

from __future__ import annotations

import torch

PALETTE = (
    torch.tensor(
        [
            [0, 0, 0],
            [230, 25, 75],
            [60, 180, 75],
            [255, 225, 25],
            [0, 130, 200],
            [245, 130, 48],
            [145, 30, 180],
            [70, 240, 240],
            [240, 50, 230],
            [210, 245, 60],
            [250, 190, 190],
            [0, 128, 128],
            [230, 190, 255],
            [170, 110, 40],
            [255, 250, 200],
            [128, 0, 0],
            [170, 255, 195],
            [128, 128, 0],
            [255, 215, 180],
            [0, 0, 128],
            [128, 128, 128],
        ],
        dtype=torch.float32,
    )
    / 255.0
)


_PALETTE_PLANES = PALETTE.t().contiguous()  # 3 x classes


def colorize(labels: torch.Tensor) -> torch.Tensor:
    """H x W class indices -> 3 x H x W colours (class 0 black; values past the palette wrap)."""
    # one gather per channel plane (3 x H x W contiguous, read by the blend below), and the integer modulo
    # (the slowest step) only when a value is past the palette
    idx = labels.long().cpu()
    if idx.numel() and (int(idx.max()) >= len(PALETTE) or int(idx.min()) < 0):
        idx = idx % len(PALETTE)
    return _PALETTE_PLANES.index_select(1, idx.flatten()).view(3, *idx.shape)


def blend(image: torch.Tensor, labels: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """3 x H x W: ``image`` (3 x H x W in [0, 1]) with class colours blended in at ``alpha`` where
    ``labels`` (H x W class indices) > 0; background pixels keep the image."""
    weight = (labels > 0).to(image.dtype).mul_(alpha)  # alpha on labelled pixels, 0 (the image, exactly) elsewhere
    return torch.lerp(image, colorize(labels), weight)


def highest_positive(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """A class map of multilabel ``scores`` (logits, or a 0/1 target) to draw: 1 + the index along ``dim``
    of the highest-scoring positive channel, 0 where no channel is positive."""
    positive = scores > 0
    best = torch.where(positive, scores, torch.full_like(scores, -torch.inf)).argmax(dim)
    return torch.where(positive.any(dim), best + 1, 0)


def overlay_grid(
    images: torch.Tensor,
    targets: torch.Tensor,
    preds: torch.Tensor,
    ignore_index: int | None = None,
    alpha: float = 0.5,
) -> torch.Tensor:
    """Rows of (input, ground truth over input, prediction over input) as one 3 x H' x W' image in [0, 1].

    ``images`` N x C x H x W (any normalisation: rescaled per image), ``targets``/``preds`` N x H x W class
    maps (ignored pixels in the target drawn white).
    """
    from torchvision.utils import make_grid

    tiles = []
    for img, tgt, pred in zip(images.float().cpu(), targets.cpu(), preds.cpu(), strict=True):
        img = img[:3] if img.shape[0] >= 3 else img[:1].expand(3, -1, -1)
        lo, hi = img.amin(), img.amax()
        img = (img - lo) / (hi - lo + 1e-8)
        valid = tgt != ignore_index if ignore_index is not None else torch.ones_like(tgt, dtype=torch.bool)
        gt = torch.where(valid, tgt, torch.zeros_like(tgt))
        for lab in (gt, pred):
            tiles.append(blend(img, lab, alpha))
        tiles[-2] = torch.where(valid.unsqueeze(0), tiles[-2], torch.ones_like(img))
        tiles.insert(len(tiles) - 2, img)
    return make_grid(torch.stack(tiles), nrow=3, padding=2, pad_value=1.0)
