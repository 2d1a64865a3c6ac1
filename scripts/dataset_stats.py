"""`segtrain-dataset-stats` without installing: the same as the installed command (segtrain/tools/dataset_stats.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's segtrain

from segtrain.tools.dataset_stats import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
