"""Hydra sweeper plugin ``hydra/sweeper=halving``: successive halving over a sweep's grid (segtrain.halving).

Found by Hydra through the ``hydra_plugins`` namespace package (no ``__init__.py`` at its top level), so it is
available wherever segtrain's source tree is on the path: installed (``pip install -e .``) or run from the
repository root.
"""
