"""Train a segmentation model: ``python train.py loss=focal_dice model=unet`` (see configs/train.yaml)."""

from segtrain.cli import main

if __name__ == "__main__":
    main()
