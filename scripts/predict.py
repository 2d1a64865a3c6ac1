"""`segtrain-predict` without installing: the same as the installed command (segtrain/tools/predict.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's segtrain

from segtrain.tools.predict import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
