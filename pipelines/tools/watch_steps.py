"""What ``regionset status --watch`` knows of a build's steps and global steps: their run order (from
``regionset.yaml``), each global step's cost model (``GlobalStep.cost``, from the saved config), the
file that commits it, and its row in the table."""

from __future__ import annotations

from typing import Any

import yaml

from regionset.pipelines.core.eta import GlobalEta, StepCost, format_eta
from regionset.pipelines.core.lineage import LINEAGE_FILE
from regionset.pipelines.core.output import Output
from regionset.pipelines.definition import GlobalStep, build_steps
from regionset.pipelines.steps import GLOBAL, PIPELINE, SHARD
from regionset.pipelines.tools.retry import saved_config
from regionset.schemas import DUPLICATES, REGION_DUPLICATES
from regionset.schemas.tables import KMEANS

# global step -> the folder it commits (its completion file: core/outputs.py ``global_outputs``)
GLOBAL_FOLDERS = {"group_duplicates": DUPLICATES, "fit_kmeans": KMEANS, "semdedup": REGION_DUPLICATES}


def build_step_names(out: Output) -> list[str]:
    """The steps the build runs, in run order, from its ``regionset.yaml`` (every step if unreadable)."""
    try:
        steps = (yaml.safe_load((out / LINEAGE_FILE).read_text()) or {}).get("config", {}).get("steps")
    except (OSError, yaml.YAMLError):
        steps = None
    named = set(steps or [n for n, _ in PIPELINE])
    return [n for n, _ in PIPELINE if n in named]


def shard_stages(out: Output) -> list[str]:
    """The shard stages the build runs, from its ``regionset.yaml`` (every shard stage if unreadable)."""
    kinds = dict(PIPELINE)
    return [n for n in build_step_names(out) if kinds.get(n) == SHARD]


def step_costs(out: Output) -> dict[str, StepCost | None]:
    """Each global step of the build -> its cost model, from the saved config (no model when the
    config cannot be read back: the step still shows as done / running / waiting)."""
    kinds = dict(PIPELINE)
    names = [n for n in build_step_names(out) if kinds.get(n) == GLOBAL]
    try:
        steps = {s.name: s for s in build_steps(saved_config(out)) if isinstance(s, GlobalStep)}
    except Exception:  # noqa: BLE001 - any unreadable or older config: watch without models
        steps = {}
    return {n: getattr(steps.get(n), "cost", None) for n in names}


def global_row(g: GlobalEta) -> list[Any]:
    """A global step's row: its state, the model's seconds, its ETA (where the model's figure comes
    from is printed under the table)."""
    ran = format_eta(g.elapsed_s) if g.elapsed_s > 0 else "0:00"
    state = "done" if g.done else f"running {ran}" if g.running else "waiting"
    model = "" if g.done or g.expected_s is None else f"model {format_eta(g.expected_s)}"
    return [g.step, f"global: {state}", model, format_eta(g.eta_s), "", ""]
