"""Stages: one file per stage, each a config dataclass + setup() + process(pa.Table) -> pa.Table."""
