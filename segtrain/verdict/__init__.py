"""Which configuration wins on my data, and is the difference real? Statistics over seeds and cases for sweep
reports.

    v = summarize(records, higher_is_better=True, rope=0.01)   # records: (config, seed, case, value)
    print(sentence(v, split="test", metric="Dice")); plot_ranks(v, "ranks.png"); json.dumps(v.to_dict())

Plain numpy/scipy/matplotlib; reads no run directories.
"""

from segtrain.verdict.compare import Components
from segtrain.verdict.plot import plot_ranks
from segtrain.verdict.result import CALLS, Comparison, RankStability, Verdict
from segtrain.verdict.sentence import sentence
from segtrain.verdict.stats import holm, kendall_tau_rows
from segtrain.verdict.summarize import DEFAULT_ROPE, summarize
from segtrain.verdict.table import (
    CaseTable,
    DroppedCase,
    FailedConfig,
    FailedSeed,
    IncompleteSeed,
    build_table,
    records_from_nested,
)

__all__ = [
    "CALLS",
    "Components",
    "DEFAULT_ROPE",
    "CaseTable",
    "Comparison",
    "DroppedCase",
    "FailedConfig",
    "FailedSeed",
    "IncompleteSeed",
    "RankStability",
    "Verdict",
    "build_table",
    "holm",
    "kendall_tau_rows",
    "plot_ranks",
    "records_from_nested",
    "sentence",
    "summarize",
]
