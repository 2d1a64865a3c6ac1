"""The job layer, above the training loop and inference: one training job from a plain config.

    run.py         build_job (config -> trainer and the evaluation's splits), run_job (train, then evaluate)
    final_eval.py  the selected checkpoint (job.select) scored case by case, the threshold tuned on val
    status.py      whether the run directory already holds this job, completed
    process.py     seeds, threads, glibc's reuse of freed memory
    signals.py     preemption signals: a flag the loop asks after each step, then exit 75 or submitit's requeue

Imports run one way: job -> engine, inference, checkpoint; nothing below imports the job layer.
"""

from segtrain.job.final_eval import final_evaluation
from segtrain.job.process import configure_process, seed_everything
from segtrain.job.run import Job, build_job, run_job
from segtrain.job.status import completed_result

__all__ = [
    "Job",
    "build_job",
    "completed_result",
    "configure_process",
    "final_evaluation",
    "run_job",
    "seed_everything",
]
