"""Model wrappers (detector, proposer, OCR, embedder) and the registry that names them.

Importing this package sets offline-safe environment defaults *before* anything imports
ultralytics, open_clip or albumentations (see ``shared/OFFLINE.md``): ultralytics otherwise does
DNS look-ups at import, writes a settings file into the home folder and pip-installs packages at run
time; an open_clip pretrained tag otherwise hangs ~46 s on the hub before failing. Every default is
``setdefault``: a variable the user exported wins. ``REGIONSET_ONLINE=1`` leaves the network
switches alone so that registry names may download where the internet is reachable.
"""

from __future__ import annotations

import os
import tempfile


def _offline_defaults() -> None:
    if os.environ.get("REGIONSET_ONLINE", "").lower() not in ("1", "true", "yes"):
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")  # no settings-file banner; warnings and errors still show
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    if "YOLO_CONFIG_DIR" not in os.environ or "MPLCONFIGDIR" not in os.environ:
        cfg_dir = os.path.join(tempfile.gettempdir(), f"regionset-config-{os.getuid()}")
        os.makedirs(cfg_dir, exist_ok=True)
        os.environ.setdefault("YOLO_CONFIG_DIR", cfg_dir)
        os.environ.setdefault("MPLCONFIGDIR", cfg_dir)


_offline_defaults()
