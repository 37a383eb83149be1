"""Executors: run a stage over shards. One backend per file; all give identical tables and markers."""

from regionset.pipelines.executors.base import ShardTask, StageReport, plan_stage, run_shard

__all__ = ["ShardTask", "StageReport", "plan_stage", "run_shard"]
