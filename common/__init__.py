"""Code that every regionset package may import: the leaf of the import graph.

``typed_config`` (YAML -> typed dataclasses with errors that name the key), ``shard_names`` (the
``part-NNNNN.parquet`` naming of shard files), ``offline`` (the environment switches that keep model
libraries from phoning home). It imports no other regionset package (docs/architecture.md).
"""
