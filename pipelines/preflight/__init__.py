"""Preflight: what every build checks before any work (``run.py``); ``checks.py`` the result type."""
