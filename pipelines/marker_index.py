"""Planning an object-store table in O(listing pages): a per-stage index of marker contents.

On an object store every GET is a request, so reading one marker (and hashing one input object) per
shard makes planning 10,000 shards cost 20,000 GETs. Instead each stage keeps one index object,
``_state/<stage>/_index.json``: for every marker, its content and the version token the listing
showed for it (S3 ETag, GCS generation). Planning lists ``_state/<stage>/`` once (the listing gives
every marker's current token), GETs the index, and trusts an entry only when its token equals the
listed one; any other marker (written by a run killed before it saved the index, rewritten since,
or a store whose listing has no tokens) is read with its own GET. The index is a cache of the
markers, never a commit: the marker stays the commit, written last, and a stale or missing index
only costs GETs, never a different skip/redo decision than reading every marker would give.

Input hashes need each input object's sha256. A committed shard's marker records it
(``output_sha256``) and a shard is never rewritten under a marker (``finish_shard`` removes the old
marker before it writes the object), so ``load_committed`` seeds the process's known hashes from the
producers' indexes at the start of a build instead of reading every input object. See README
"Object storage".
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from common.shard_names import STATE_DIR, shard_id
from common.storage import RemotePath, as_path, is_remote
from pipelines.shards import Marker, read_marker, remember_sha256, shard_path, write_json

INDEX_NAME = "_index.json"


def _marker_shard(name: str) -> int | None:
    return shard_id(name.replace(".json", ".parquet")) if name.endswith(".json") else None


class MarkerIndex:
    """The markers of one stage on an object store: one listing, one index GET, a GET per marker the
    index does not vouch for.

    Args:
        out: the output prefix.
        stage: the stage's name.
    """

    def __init__(self, out: RemotePath, stage: str) -> None:
        self.out, self.stage = out, stage
        self.folder = out / STATE_DIR / stage
        self.fetched = 0  # markers read one by one (what the next saved index spares)
        listed = self.folder.versions()
        self.tokens = {i: tok for name, tok in listed.items() if (i := _marker_shard(name)) is not None}
        self.markers: dict[int, tuple[str | None, Marker]] = {}
        if INDEX_NAME in listed:
            for key, entry in self._load().items():
                tok = self.tokens.get(int(key))
                if tok is not None and entry.get("token") == tok:
                    self.markers[int(key)] = (tok, Marker(**entry["marker"]))

    def _load(self) -> dict:
        try:
            return dict(json.loads((self.folder / INDEX_NAME).read_text()).get("markers", {}))
        except (OSError, ValueError, TypeError, AttributeError):
            return {}  # a missing or unreadable index only means more GETs

    def marked(self) -> set[int]:
        """Shards of the stage with a marker object."""
        return set(self.tokens)

    def get(self, shard: int) -> Marker | None:
        """The shard's marker: from the index when its token matches the listing, else one GET."""
        if shard not in self.tokens:
            return None
        if shard in self.markers:
            return self.markers[shard][1]
        marker = read_marker(self.out, self.stage, shard)
        self.fetched += 1
        if marker is not None:
            self.markers[shard] = (self.tokens[shard], marker)
        return marker

    def save(self, written: list[Marker]) -> None:
        """Write the index after a stage ran (one listing for the new markers' tokens, one PUT);
        nothing when no marker was written or read one by one.

        Args:
            written: the markers this run wrote (their content is what the listing now shows).
        """
        if not written and not self.fetched:
            return
        fresh = {m.shard: m for m in written}
        listed = {i: tok for name, tok in self.folder.versions().items() if (i := _marker_shard(name)) is not None}
        entries, markers = {}, {}
        for shard, tok in sorted(listed.items()):
            known = self.markers.get(shard)
            marker = fresh.get(shard) or (known[1] if known and known[0] == tok else None)
            if tok is None or marker is None:
                continue
            markers[shard] = (tok, marker)
            entries[str(shard)] = {"token": tok, "marker": asdict(marker)}
        if any(tok is not None for tok in listed.values()):
            write_json({"stage": self.stage, "markers": entries}, self.folder / INDEX_NAME)
        self.tokens, self.markers, self.fetched = listed, markers, 0


_INDEXES: dict[tuple[str, str], MarkerIndex] = {}


def committed(out: Path | RemotePath, stage: str) -> MarkerIndex:
    """This process's index of ``stage``'s markers under the object-store prefix ``out``.

    Args:
        out: the output prefix.
        stage: the stage's name.
    """
    key = (str(out), stage)
    if key not in _INDEXES:
        _INDEXES[key] = MarkerIndex(as_path(out), stage)
    return _INDEXES[key]


def load_committed(out: Path | RemotePath, producers: dict[str, str]) -> None:
    """At the start of a build on an object store: forget earlier indexes, and remember the sha256 of
    every committed shard from its producer's markers (no GET per input object when planning).

    Args:
        out: the output folder or prefix (nothing to do for a local folder).
        producers: table folder -> the stage that writes it.
    """
    _INDEXES.clear()
    if not is_remote(out):
        return
    for folder, stage in producers.items():
        index = committed(out, stage)
        for shard in sorted(index.marked()):
            marker = index.get(shard)
            if marker is not None:
                remember_sha256(shard_path(out, folder, shard), marker.output_sha256)


def save_index(out: Path | RemotePath, stage: str, written: list[Marker]) -> None:
    """After a stage ran on an object store: save its index (nothing for a local folder).

    Args:
        out: the output folder or prefix.
        stage: the stage's name.
        written: the markers this run wrote.
    """
    if is_remote(out):
        committed(out, stage).save(written)
