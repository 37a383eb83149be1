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

from regionset.common.shard_names import STATE_DIR, shard_id
from regionset.common.storage import RemotePath, as_path, is_remote
from regionset.pipelines.core.shards import Marker, read_marker, remember_sha256, shard_path, write_json

INDEX_NAME = "_index.json"


def _marker_shard(name: str) -> int | None:
    return shard_id(name.replace(".json", ".parquet")) if name.endswith(".json") else None


class MarkerIndex:
    """The markers of one stage on an object store, as of a fresh listing: what the listing's tokens
    vouch for comes from this process's cache or the index object; any other marker is one GET.

    Args:
        out: the output prefix.
        stage: the stage's name.
    """

    def __init__(self, out: RemotePath, stage: str) -> None:
        self.out, self.stage = out, stage
        self.folder = out / STATE_DIR / stage
        listed = self.folder.versions()
        self.tokens = {i: tok for name, tok in listed.items() if (i := _marker_shard(name)) is not None}
        known = _KNOWN.setdefault((str(out), stage), {})
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
                _KNOWN[(str(self.out), self.stage)][shard] = self.markers[shard]
                _UNSAVED.add((str(self.out), self.stage))  # the next saved index spares this GET
        return marker


_KNOWN: dict[tuple[str, str], dict[int, tuple[str, Marker]]] = {}  # (out, stage) -> shard -> (token, marker)
_UNSAVED: set[tuple[str, str]] = set()  # stages whose markers were read one by one since their index was saved


def committed(out: Path | RemotePath, stage: str) -> MarkerIndex:
    """``stage``'s markers under the object-store prefix ``out``, from a fresh listing.

    Args:
        out: the output prefix.
        stage: the stage's name.
    """
    return MarkerIndex(as_path(out), stage)


def save_index(out: Path | RemotePath, stage: str, written: list[Marker]) -> None:
    """After a stage ran on an object store: write its index (one listing for the tokens of the markers
    just written, one PUT); nothing for a local folder, or when no marker was written or read one by one.

    Args:
        out: the output folder or prefix.
        stage: the stage's name.
        written: the markers this run wrote (their content is what the listing now shows).
    """
    key = (str(out), stage)
    if not is_remote(out) or not (written or key in _UNSAVED):
        return
    folder = as_path(out) / STATE_DIR / stage
    fresh = {m.shard: m for m in written}
    listed = {i: tok for name, tok in folder.versions().items() if (i := _marker_shard(name)) is not None}
    known = _KNOWN.setdefault(key, {})
    entries = {}
    for shard, tok in sorted(listed.items()):
        if tok is None:
            continue
        if shard in fresh:
            known[shard] = (tok, fresh[shard])
        if shard in known and known[shard][0] == tok:
            entries[str(shard)] = {"token": tok, "marker": asdict(known[shard][1])}
    if entries:
        write_json({"stage": stage, "markers": entries}, folder / INDEX_NAME)
    _UNSAVED.discard(key)


def load_committed(out: Path | RemotePath, producers: dict[str, str]) -> None:
    """At the start of a build on an object store: forget what this process knew of earlier builds,
    and remember the sha256 of every committed shard from its producer's markers (no GET per input
    object when planning).

    Args:
        out: the output folder or prefix (nothing to do for a local folder).
        producers: table folder -> the stage that writes it.
    """
    _KNOWN.clear()
    _UNSAVED.clear()
    if not is_remote(out):
        return
    for folder, stage in producers.items():
        index = committed(out, stage)
        for shard in sorted(index.marked()):
            marker = index.get(shard)
            if marker is not None:
                remember_sha256(shard_path(out, folder, shard), marker.output_sha256)
