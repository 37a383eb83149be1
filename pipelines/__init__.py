"""Pipelines: the stage list, global steps (k-means fit, catalog), executors and the CLI."""
