"""One view of the train shards for every rank, and the check of that view against a checkpoint's.

Rank 0 lists the shards and reads their footers once (:func:`regionset.training.data.shard_view`); every other rank gets
the list by broadcast, so ranks never disagree about the data even while a build is still adding
shards. On resume :func:`reconcile_shards` compares the checkpoint's list with today's: a shard
that disappeared (or whose row count changed) is an error naming it; a new shard is an error too,
unless ``loop.follow_new_shards`` is set: then the new shards are appended in name order after the
saved ones and join the stream at the epoch after the newest epoch any reader had reached, so the
epoch in progress finishes exactly as planned and every rank derives the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ShardList:
    """Shards (paths or URLs) in stream order, their row counts and the epoch each joins at."""

    paths: list[str]
    rows: list[int]
    join_epochs: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.join_epochs:
            self.join_epochs = [0] * len(self.paths)

    def names(self) -> list[str]:
        """File names of the shards (what a checkpoint records)."""
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.paths]


def reconcile_shards(saved: list[dict], now: ShardList, follow_new: bool, next_epoch: int,
                     where: str) -> ShardList:
    """The shard list to resume with, or a ``ValueError`` naming what changed.

    Args:
        saved: the checkpoint's shards (``name``, ``rows`` and ``join_epoch`` of each, in stream order).
        now: today's view.
        follow_new: append shards that are new since the checkpoint instead of failing.
        next_epoch: the epoch new shards join at.
        where: the checkpoint, for messages.
    """
    current = dict(zip(now.names(), zip(now.paths, now.rows, strict=True), strict=True))
    gone = [s["name"] for s in saved if s["name"] not in current]
    if gone:
        raise ValueError(f"{where} trained on shard(s) {gone} that are no longer in the train folder; "
                         "restore them or start a new run (loop.out_dir)")
    changed = [s["name"] for s in saved if current[s["name"]][1] != int(s["rows"])]
    if changed:
        raise ValueError(f"shard(s) {changed} changed their row count since {where}; start a new run")
    known = {s["name"] for s in saved}
    new = sorted(n for n in current if n not in known)
    if new and not follow_new:
        raise ValueError(f"shard(s) {new} appeared since {where}; set loop.follow_new_shards=true to "
                         "append them, or start a new run")
    order = [s["name"] for s in saved] + new
    joins = [int(s.get("join_epoch", 0)) for s in saved] + [next_epoch] * len(new)
    return ShardList([current[n][0] for n in order], [current[n][1] for n in order], joins)
