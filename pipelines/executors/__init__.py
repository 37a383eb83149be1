"""Executors: run a stage over shards. One backend per file; all give identical tables and markers.
Re-exports nothing: import from the module that defines a name."""
