"""Croc: LLaVA-style model trained off the train shards (stages 1, 1.5, 2); see docs/training-croc.md."""
