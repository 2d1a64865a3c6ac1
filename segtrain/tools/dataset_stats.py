"""Per-class pixel frequencies, image counts and sizes of a split (and image mean/std for normalize).

    python scripts/dataset_stats.py dataset=camvid [--split train] [--json stats.json]

The frequencies are what a loss config's ``frequencies: dataset`` uses (weighted_ce, exp_log).
"""

from __future__ import annotations

import argparse
import json
import sys

from segtrain.tools.compose import dataset_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=camvid")
    parser.add_argument("--split", default="train")
    parser.add_argument("--json", default=None, help="also write the statistics to this JSON file")
    parser.add_argument("--no-image-stats", action="store_true", help="skip the image mean/std pass")
    args = parser.parse_args(argv)

    from segtrain.data import build_dataset, class_frequencies, image_mean_std

    name, kwargs, _ = dataset_config(args.overrides)
    dataset = build_dataset(name, split=args.split, **kwargs)
    stats = class_frequencies(dataset)
    if not args.no_image_stats and hasattr(dataset, "load_image"):
        stats["image_mean_std"] = image_mean_std(dataset)
    print(f"{name} [{args.split}] at {kwargs.get('root')}: {stats['num_images']} images, sizes {stats['sizes']}")
    width = max(len(c) for c in stats["class_names"])
    print(f"{'class':<{width}}  {'pixels':>12}  {'freq %':>7}  {'images':>6}")
    for c, n, f, k in zip(
        stats["class_names"], stats["pixel_counts"], stats["frequencies"], stats["image_counts"], strict=True
    ):
        print(f"{c:<{width}}  {n:>12}  {100 * f:>7.2f}  {k:>6}")
    print(f"ignored pixels: {stats['ignored_pixels']} of {stats['total_pixels']}")
    if "image_mean_std" in stats:
        print(f"normalize: {stats['image_mean_std']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(stats, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
