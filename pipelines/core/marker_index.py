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
marker before it writes the object), so ``Output.load_committed`` seeds the process's known hashes
from the producers' indexes at the start of a build instead of reading every input object. See README
"Object storage".

What a process knows of a stage's markers lives in a ``StageMarkers`` that the build's ``Output`` owns
(``out.markers(stage)``): no module-level cache, so two outputs (or two builds) never share one.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from regionset.common.shard_names import STATE_DIR, shard_id
from regionset.common.storage import RemotePath, is_remote
from regionset.pipelines.core.shards import Marker, read_marker, write_json

INDEX_NAME = "_index.json"


def _marker_shard(name: str) -> int | None:
    return shard_id(name.replace(".json", ".parquet")) if name.endswith(".json") else None


class StageMarkers:
    """What this process knows of one stage's markers under one output: ``shard -> (token, marker)``
    for markers whose listed token was seen, and whether some were read one by one since the stage's
    index object was saved. Made and kept by ``Output.markers(stage)``.

    Args:
        out: the output's root (a folder or an object-store prefix).
        stage: the stage's name.
    """

    def __init__(self, out: Path | RemotePath, stage: str) -> None:
        self.out, self.stage = out, stage
        self.folder = out / STATE_DIR / stage
        self.known: dict[int, tuple[str, Marker]] = {}
        self.unsaved = False

    def forget(self) -> None:
        """Forget what this process knew (a new build starts from what the store holds)."""
        self.known.clear()
        self.unsaved = False

    def committed(self) -> MarkerIndex:
        """The stage's markers on the object store, from a fresh listing."""
        return MarkerIndex(self)

    def save(self, written: list[Marker]) -> None:
        """After a stage ran on an object store: write its index (one listing for the tokens of the
        markers just written, one PUT); nothing for a local folder, or when no marker was written or
        read one by one.

        Args:
            written: the markers this run wrote (their content is what the listing now shows).
        """
        if not is_remote(self.out) or not (written or self.unsaved):
            return
        fresh = {m.shard: m for m in written}
        listed = {i: tok for name, tok in self.folder.versions().items() if (i := _marker_shard(name)) is not None}
        entries = {}
        for shard, tok in sorted(listed.items()):
            if tok is None:
                continue
            if shard in fresh:
                self.known[shard] = (tok, fresh[shard])
            if shard in self.known and self.known[shard][0] == tok:
                entries[str(shard)] = {"token": tok, "marker": asdict(self.known[shard][1])}
        if entries:
            write_json({"stage": self.stage, "markers": entries}, self.folder / INDEX_NAME)
        self.unsaved = False


class MarkerIndex:
    """The markers of one stage on an object store, as of a fresh listing: what the listing's tokens
    vouch for comes from the stage's ``StageMarkers`` or the index object; any other marker is one GET.

    Args:
        cache: what this process knows of the stage (``out.markers(stage)``).
    """

    def __init__(self, cache: StageMarkers) -> None:
        self.cache = cache
        self.out, self.stage, self.folder = cache.out, cache.stage, cache.folder
        listed = self.folder.versions()
        self.tokens = {i: tok for name, tok in listed.items() if (i := _marker_shard(name)) is not None}
        known = cache.known
        self.markers = {i: known[i] for i, tok in self.tokens.items()
                        if tok is not None and i in known and known[i][0] == tok}
        if INDEX_NAME in listed and len(self.markers) < len(self.tokens):
            for key, entry in self._load().items():
                tok = self.tokens.get(int(key))
                if tok is not None and entry.get("token") == tok:
                    self.markers[int(key)] = known[int(key)] = (tok, Marker(**entry["marker"]))

    def _load(self) -> dict:
        try:
            return dict(json.loads((self.folder / INDEX_NAME).read_text()).get("markers", {}))
        except (OSError, ValueError, TypeError, AttributeError):
            return {}  # a missing or unreadable index only means more GETs

    def marked(self) -> set[int]:
        """Shards of the stage with a marker object."""
        return set(self.tokens)

    def get(self, shard: int) -> Marker | None:
        """The shard's marker: vouched for by its listed token, else read with one GET."""
        if shard not in self.tokens:
            return None
        if shard in self.markers:
            return self.markers[shard][1]
        marker = read_marker(self.out, self.stage, shard)
        if marker is not None:
            self.markers[shard] = (self.tokens[shard], marker)
            if self.tokens[shard] is not None:
                self.cache.known[shard] = self.markers[shard]
                self.cache.unsaved = True  # the next saved index spares this GET
        return marker
