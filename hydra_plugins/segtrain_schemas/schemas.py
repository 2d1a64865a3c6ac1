"""``trainer/schema`` and ``job/schema`` in Hydra's ConfigStore (the dataclasses of segtrain/schemas.py)."""

from hydra.core.config_store import ConfigStore

from segtrain.schemas import SCHEMAS

for _group, _schema in SCHEMAS.items():
    ConfigStore.instance().store(group=_group, name="schema", node=_schema, provider="segtrain")
