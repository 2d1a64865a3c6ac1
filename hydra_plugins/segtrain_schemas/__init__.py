"""Registers segtrain's config schemas (segtrain/schemas.py) in Hydra's ConfigStore as ``<group>/schema``, so
that configs/trainer/default.yaml and configs/job/default.yaml can extend them. Hydra imports this module
when it scans its plugins at start-up, for train.py, the tools and the compose API alike."""
