"""Model wrappers (detector, proposer, OCR, embedder) and the registry that names them.

Importing this package sets the offline-safe environment defaults (``regionset.common.offline``) *before*
anything imports ultralytics, open_clip or albumentations.
"""

from __future__ import annotations

from regionset.common.offline import set_offline_defaults

set_offline_defaults()
