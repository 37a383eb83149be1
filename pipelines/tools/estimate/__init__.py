"""``regionset estimate``: measure a sample (measure.py), project it (projection.py), print (run.py)."""
