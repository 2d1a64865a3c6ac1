"""The command-line tools around the library, installed as commands (pyproject's [project.scripts]):

    segtrain-summarize <sweep dir>        the sweep report (summary.md, verdict.json, plots)
    segtrain-evaluate checkpoint=<run>    a checkpoint on any split: per-class and per-case metrics
    segtrain-predict checkpoint=<run> input=<images> output=<dir>
    segtrain-export checkpoint=<run> format=onnx|torchscript
    segtrain-check-dataset dataset=...    every problem of a data set at once
    segtrain-dataset-stats dataset=...    class frequencies

``python scripts/<tool>.py`` runs the same ``main``. Each tool composes its config through ``compose.py``
(Hydra's compose API over configs/) and then calls the same library functions as training.
"""
