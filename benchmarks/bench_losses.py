"""Time forward + backward of every segtrain loss next to its public counterpart (MONAI, smp, torchvision).

    python benchmarks/bench_losses.py [--quick] [--device cpu|cuda] [--repeats 5] [--only dice,lovasz]
    python benchmarks/bench_losses.py --shape 4x21x128x128 --shape 8x1x256x256   # any N x C x S shapes
    python benchmarks/bench_losses.py --step ce_dice [--repeats 20]             # a whole training step
    python benchmarks/bench_losses.py --step cldice --versus ce                 # steps of two losses, alternating

Prints one markdown table per shape: median milliseconds after a warm-up, the ratio to the public
implementation (< 1 is faster) and to plain cross-entropy, each the median of the ratios of the two
timed in the same round. The boundary losses get their distance maps precomputed, as training does
(the data pipeline makes them); the time to make them is printed apart.
Shapes: multiclass 8 x 21 x 256 x 256, binary 16 x 1 x 512 x 512, 3-D multiclass 2 x 4 x 64 x 64 x 64
(``--quick``: small ones; ``--shape NxCxHxW``, repeatable, replaces them; C = 1 is binary).

``--step LOSS`` times whole training steps of the default job instead (forward, loss, backward and an
AdamW step of ``configs/model/unet.yaml``'s U-Net, random init, on a 16 x 3 x 64 x 64 batch as
``configs/dataset/shapes.yaml``; binary losses get one output channel as ``shapes_binary``) and prints
the median step in ms. ``--against DIR`` (a segtrain checkout) also loads that checkout's
``segtrain/losses`` under another name and alternates steps between its loss and this one on the same
model and batch, printing the median of the per-pair ratios: a busy machine slows both alike.

On Linux the allocator is first told to keep freed memory (``--malloc steady``, the default): glibc
otherwise hands every tensor above its mmap threshold (dynamic, at most 32 MB) straight back to the
kernel and page-faults it in again on the next call, and whether a 16 MB tensor lands above or below
that threshold changes from run to run (docs/losses.md has the figures).
``--malloc default`` measures glibc's default behaviour.

A second process-wide state: torch's AVX-512 CPU kernels for ``log1p`` / ``softplus`` / ``logsigmoid``
(so torch's BCE, torchvision's focal and segtrain's losses alike) read constants with masked loads, and
until the page holding such a constant has been mapped, every call pays a microcode assist and runs about
20x slower (see ``benchmarks/_prefault.py``). The benchmark maps those pages first
(``--prefault on``, the default) and ``--prefault off`` measures the slow state. A canary (``log1p`` of
1M floats) is timed before and after each table, so the state shows.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _prefault import prefault_torch_constants

from segtrain.losses import LOSSES, available_losses, build_loss
from segtrain.losses.target_maps import sample_distance_maps

FULL = {"multiclass": (8, 21, 256, 256), "binary": (16, 1, 512, 512), "multiclass 3-D": (2, 4, 64, 64, 64)}
QUICK = {"multiclass": (2, 5, 64, 64), "binary": (4, 1, 128, 128), "multiclass 3-D": (1, 3, 16, 16, 16)}


def steady_allocator() -> str:
    """Keep freed memory in the process (no mmap for large blocks, no trimming): both arms of every
    comparison then reuse warm pages instead of page-faulting fresh ones. Returns what was done."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return "default allocator (no glibc mallopt here)"
    m_trim_threshold, m_mmap_threshold = -1, -3
    if libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, (1 << 31) - 1):
        return "glibc malloc: mmap threshold 1 GiB, no trimming"
    return "default allocator (mallopt refused)"


def canary_ms() -> float:
    """Median time of torch.log1p on 1M floats (docs/losses.md has the figures with and without the prefault)."""
    v = torch.rand(1 << 20, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        torch.log1p(v)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def public_counterpart(name: str, mode: str) -> tuple[str, Callable] | None:
    """The public function docs/losses.md maps ``name`` to in ``mode``, taking (logits, segtrain target)."""
    try:
        from monai import losses as monai
        from segmentation_models_pytorch import losses as smp
        from torchvision.ops import sigmoid_focal_loss
    except ImportError:
        return None
    mc = mode == "multiclass"
    act = {"softmax": True, "to_onehot_y": True} if mc else {"sigmoid": True}

    def chan(t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(1) if mc else t.unsqueeze(1).float()

    def monai_fn(loss: torch.nn.Module) -> Callable:
        return lambda x, t: loss(x, chan(t))

    table: dict[str, tuple[str, Callable]] = {
        "ce": (
            "torch",
            (lambda x, t: F.cross_entropy(x, t))
            if mc
            else (lambda x, t: F.binary_cross_entropy_with_logits(x, chan(t))),
        ),
        "bce": ("torch", lambda x, t: F.binary_cross_entropy_with_logits(x, chan(t))),
        "dice": ("MONAI", monai_fn(monai.DiceLoss(batch=True, **act))),
        "iou": ("smp", smp.JaccardLoss(mode)),
        "tversky": ("MONAI", monai_fn(monai.TverskyLoss(batch=True, **act))),
        "generalized_dice": ("MONAI", monai_fn(monai.GeneralizedDiceLoss(batch=True, **act))),
        "lovasz": ("smp", smp.LovaszLoss(mode)),
        "ce_dice": ("MONAI", monai_fn(monai.DiceCELoss(batch=True, **act))),
        "bce_dice": ("MONAI", monai_fn(monai.DiceCELoss(batch=True, **act))),
        "focal_dice": ("MONAI", monai_fn(monai.DiceFocalLoss(batch=True, **act))),
    }
    # the specialised losses: the twins docs/losses.md maps them to (cldice / dice_cldice / asym_unified_focal: binary)
    table["hausdorff_dt"] = ("MONAI", monai_fn(monai.HausdorffDTLoss(**act)))
    table["mcc"] = ("MONAI", monai_fn(monai.MCCLoss(batch=True, **act)))
    if not mc:
        table["cldice"] = ("MONAI", monai_fn(monai.SoftclDiceLoss(sigmoid=True, smooth=1e-30)))
        table["dice_cldice"] = ("MONAI", monai_fn(monai.SoftDiceclDiceLoss(sigmoid=True, smooth=1e-30)))
        unified = monai.AsymmetricUnifiedFocalLoss()
        table["asym_unified_focal"] = ("MONAI", lambda x, t: unified(torch.sigmoid(x), chan(t)))
    if mc:
        table["focal"] = ("MONAI", monai_fn(monai.FocalLoss(use_softmax=True, to_onehot_y=True)))
    else:
        table["focal"] = ("torchvision", lambda x, t: sigmoid_focal_loss(x, chan(t), reduction="mean"))
    return table.get(name)


def time_ms(fns: list[Callable], logits: torch.Tensor, target: torch.Tensor, repeats: int) -> list[list[float]]:
    """Wall times (ms) of forward + backward of each function in every round after two warm-up rounds;
    the functions take turns in every round, so a busy machine slows them alike, and the order rotates
    from round to round (the function that runs right after another finds its inputs in cache: up to 5%
    here)."""
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats + 2):
        start_at = i % len(fns)
        order = list(range(start_at, len(fns))) + list(range(start_at))
        for fn, bucket in ((fns[k], times[k]) for k in order):
            x = logits.detach().requires_grad_(True)
            if logits.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(x, target).backward()
            if logits.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                bucket.append((time.perf_counter() - start) * 1000)
    return times


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over rounds of the ratio of two functions timed in the same round: the pair shares the
    machine's state at that moment, which a ratio of two medians does not (on a shared 2-vCPU VM the
    medians of one function drift by 5-10% between runs)."""
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def bench_shape(label: str, shape: tuple[int, ...], device: str, repeats: int, only: set[str] | None) -> str:
    mode = "binary" if shape[1] == 1 else "multiclass"
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=gen).to(device)
    n, c, *spatial = shape
    high = 2 if mode == "binary" else c
    target = torch.randint(0, high, (n, *spatial), generator=gen).to(device)
    plain = public_counterpart("ce", mode)[1]
    canary_before = canary_ms()
    plain_times = []
    maps, maps_ms = None, 0.0
    rows = [
        f"### {label} {' x '.join(map(str, shape))} ({device})",
        "",
        "| loss | segtrain ms | public | public ms | segtrain / public | segtrain / plain CE |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name in available_losses():
        cls = LOSSES.get(name)
        if name == "jaccard" or mode not in cls.modes or (only and name not in only):
            continue
        kwargs = {"losses": [{"name": "ce"}, {"name": "dice"}]} if name == "combo" else {}
        loss_fn = build_loss(name, mode=mode, **kwargs)
        if "distance" in loss_fn.aux_inputs:  # as in training: maps made by the loader's workers
            if maps is None:
                start = time.perf_counter()
                maps = torch.stack([sample_distance_maps(t, spatial, mode, c, None) for t in target.cpu()])
                maps_ms = (time.perf_counter() - start) * 1000
                maps = maps.to(device)
            loss_fn = functools.partial(loss_fn, distance=maps)
        target_maps = [key for key in getattr(loss_fn, "aux_inputs", ()) if key in ("skeleton", "target_distance")]
        if target_maps:  # skeleton_recall, hausdorff_dt: maps made by the loader's workers in training
            from segtrain.data.target_maps import MAKERS

            made = {k: torch.stack([MAKERS[k](t, spatial, mode, c, None) for t in target.cpu()]) for k in target_maps}
            loss_fn = functools.partial(loss_fn, **{k: v.to(device) for k, v in made.items()})
        public = public_counterpart(name, mode)
        # plain CE runs in the same rounds, so the ratio to it is taken under the same load
        if public is None:
            ours, plain_ce = time_ms([loss_fn, plain], logits, target, repeats)
            cells = ["-", "-", "-"]
        else:
            ours, theirs, plain_ce = time_ms([loss_fn, public[1], plain], logits, target, repeats)
            cells = [public[0], f"{statistics.median(theirs):.1f}", f"{paired_ratio(ours, theirs):.2f}"]
        plain_times.append(statistics.median(plain_ce))
        to_ce = paired_ratio(ours, plain_ce)
        rows.append(f"| {name} | {statistics.median(ours):.1f} | {' | '.join(cells)} | {to_ce:.2f} |")
    rows.append(f"\nplain CE (torch.nn.functional), median over the rows: {statistics.median(plain_times):.1f} ms")
    if maps is not None:
        rows.append(
            f"boundary rows: distance maps precomputed as the data pipeline does (`DistanceMaps`, in the "
            f"loader's workers); making them for this batch took {maps_ms:.1f} ms ({torch.get_num_threads()} threads)"
        )
    rows.append(
        f"canary (log1p of 1M floats, see the module docstring): {canary_before:.2f} ms before, "
        f"{canary_ms():.2f} ms after this table"
    )
    rows.append("")
    return "\n".join(rows)


def parse_shape(text: str) -> tuple[int, ...]:
    """``4x21x128x128`` -> (4, 21, 128, 128): N x C x H x W or N x C x D x H x W."""
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) not in (4, 5) or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"--shape takes N x C x H x W or N x C x D x H x W like 4x21x128x128, got {text!r}"
        )
    return shape


def other_losses(checkout: str) -> object:
    """``segtrain.losses`` of another checkout, imported as the package ``segtrain_other`` (its modules
    import each other relatively, so the two catalogues live side by side)."""
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(checkout) / "segtrain"
    spec = importlib.util.spec_from_file_location(
        "segtrain_other", root / "__init__.py", submodule_search_locations=[str(root)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["segtrain_other"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("segtrain_other.losses")


def step_ms(loss_name: str, repeats: int, device: str, against: str = "", versus: str = "") -> list[list[float]]:
    """Wall times (ms) of ``repeats`` training steps after three warm-up steps: the default job's U-Net
    (configs/model/unet.yaml, random init) on a 16 x 3 x 64 x 64 batch (configs/dataset/shapes.yaml),
    AdamW (configs/optimizer/adamw.yaml); 4 classes, or 1 output for a loss without multiclass mode.
    With ``against``, steps alternate between this loss and that checkout's (second list); with ``versus``,
    between this loss and another loss of this checkout on the same model and batch (second list)."""
    from segtrain.models import build_model

    mode = "multiclass" if "multiclass" in LOSSES.get(loss_name).modes else "binary"
    if versus and mode not in LOSSES.get(versus).modes:
        raise SystemExit(f"--versus {versus} has no {mode} mode, which --step {loss_name} runs in")
    classes = 4 if mode == "multiclass" else 1
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model("unet", classes, 3, "tu-regnetx_002", None, decoder_channels=[128, 64, 32, 16, 16]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fns = [build_loss(loss_name, mode=mode)]
    if against:
        loss_fns.append(other_losses(against).build_loss(loss_name, mode=mode))
    if versus:
        loss_fns.append(build_loss(versus, mode=mode))
    images = torch.randn(16, 3, 64, 64, generator=gen).to(device)
    target = torch.randint(0, max(classes, 2), (16, 64, 64), generator=gen).to(device)
    times: list[list[float]] = [[] for _ in loss_fns]
    for i in range(repeats + 3):
        for k in [(j + i) % len(loss_fns) for j in range(len(loss_fns))]:  # the order alternates
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fns[k](model(images), target)
            loss.backward()
            optimizer.step()
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times[k].append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes (seconds on a CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up")
    parser.add_argument("--only", default="", help="comma-separated loss names")
    parser.add_argument("--shapes", default="", help="comma-separated subset of: multiclass, binary, 3d")
    parser.add_argument("--shape", type=parse_shape, action="append", help="NxCxHxW in place of the set shapes")
    parser.add_argument("--step", default="", help="time training steps with this loss (module docstring)")
    parser.add_argument("--against", default="", help="--step: a segtrain checkout whose loss alternates with this")
    parser.add_argument("--versus", default="", help="--step: another loss (e.g. ce) that alternates with this")
    parser.add_argument("--malloc", choices=("steady", "default"), default="steady", help="see the module docstring")
    parser.add_argument("--prefault", choices=("on", "off"), default="on", help="see the module docstring")
    args = parser.parse_args()
    allocator = steady_allocator() if args.malloc == "steady" else "default allocator"
    pages = prefault_torch_constants() if args.prefault == "on" else 0
    shapes = QUICK if args.quick else FULL
    wanted = {s.strip() for s in args.shapes.split(",") if s.strip()}
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    setup = f"{torch.get_num_threads()} threads, repeats {args.repeats}, {allocator}, pages prefaulted: {pages}"
    print(f"torch {torch.__version__}, {setup}\n")
    if args.step:
        if args.against and args.versus:
            raise SystemExit("--step takes --against or --versus, not both")
        times = step_ms(args.step, args.repeats, args.device, args.against, args.versus)
        print(f"step {args.step}: median {statistics.median(times[0]):.2f} ms over {len(times[0])} steps")
        other = f"{args.step} of {args.against}" if args.against else args.versus
        if other:
            print(
                f"step {other}: median {statistics.median(times[1]):.2f} ms; "
                f"{args.step} / {other}, median of the per-pair ratios: {paired_ratio(times[0], times[1]):.3f}"
            )
        return
    if args.shape:  # given shapes replace the set ones, and --shapes does not filter them
        shapes, wanted = (
            {f"shape {i + 1}: {'binary' if s[1] == 1 else 'multiclass'}": s for i, s in enumerate(args.shape)},
            set(),
        )
    for label, shape in shapes.items():
        key = "3d" if "3-D" in label else label
        if wanted and key not in wanted:
            continue
        print(bench_shape(label, shape, args.device, args.repeats, only), flush=True)


if __name__ == "__main__":
    main()
