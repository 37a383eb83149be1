"""Static visual QA report of an output folder (``regionset report OUT``, ``build.py``): see docs/report.md."""
