"""The engine: one-shard run, shard files and markers, inputs, outputs, lock, lineage, catalog, progress."""
