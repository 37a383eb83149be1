"""Which step commits which folder: the shard stages' table folders and the global steps' state files.

The catalog (which files are committed) and ``begin_build`` (temp files a killed writer left) read
these; the global steps write their state files under these names.
"""

from __future__ import annotations

from regionset.common.shard_names import STATE_DIR
from regionset.models.kmeans_index import KMEANS_JSON
from regionset.schemas import DUPLICATES, REGION_DUPLICATES
from regionset.schemas.tables import KMEANS
from regionset.stages.assign import AssignStage
from regionset.stages.dedup import DedupStage
from regionset.stages.detect import DetectStage
from regionset.stages.download import DownloadStage
from regionset.stages.embed import EmbedStage
from regionset.stages.ocr import OcrStage
from regionset.stages.pack import PackStage

GROUP_DUPLICATES_STATE = "group_duplicates.json"  # under OUT/_state: the commit of duplicates/
SEMDEDUP_STATE = "semdedup.json"  # under OUT/_state: the commit of region_duplicates/


def stage_outputs() -> dict[str, str]:
    """Table folder -> the shard stage that writes it (on object stores its markers commit the folder)."""
    return {cls.output: cls.name for cls in (DownloadStage, DedupStage, DetectStage, OcrStage, EmbedStage,
                                             AssignStage, PackStage)}


def global_outputs() -> dict[str, str]:
    """Folder a global step writes -> its completion file (relative to OUT), written last: the commit
    of the whole folder, since object stores have no rename (README "Object storage")."""
    return {DUPLICATES: f"{STATE_DIR}/{GROUP_DUPLICATES_STATE}",
            KMEANS: f"{KMEANS}/{KMEANS_JSON}",
            REGION_DUPLICATES: f"{STATE_DIR}/{SEMDEDUP_STATE}"}
