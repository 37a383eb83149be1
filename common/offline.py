"""The environment switches that keep the model stack offline and quiet, in one place.

Without them ultralytics does DNS look-ups at import, writes a settings file into the home folder
and pip-installs packages at run time; an open_clip pretrained tag hangs ~46 s on the hub before
failing; albumentations checks for updates; wandb phones home (docs/region-stages.md). Every switch
is a default (``setdefault``): a variable the user exported wins. ``REGIONSET_ONLINE=1`` leaves the
network switches alone so that registry names may download where the internet is reachable.
"""

from __future__ import annotations

import os
import tempfile

# Set always (they only stop run-time installs, banners and update checks).
QUIET_ENV = {
    "YOLO_AUTOINSTALL": "False",
    "YOLO_VERBOSE": "False",  # no settings-file banner; warnings and errors still show
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "WANDB_MODE": "disabled",
    "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True",
}
# Set unless REGIONSET_ONLINE=1 (they stop downloads).
OFFLINE_ENV = {"YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def online_allowed() -> bool:
    """Whether ``REGIONSET_ONLINE`` allows model names to download."""
    return os.environ.get("REGIONSET_ONLINE", "").lower() in ("1", "true", "yes")


def config_dir() -> str:
    """The per-user temp folder given to ultralytics and matplotlib as their config folder."""
    path = os.path.join(tempfile.gettempdir(), f"regionset-config-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


def set_offline_defaults() -> None:
    """Apply every switch as a default of this process's environment (children inherit it)."""
    env = dict(QUIET_ENV)
    if not online_allowed():
        env.update(OFFLINE_ENV)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if "YOLO_CONFIG_DIR" not in os.environ or "MPLCONFIGDIR" not in os.environ:
        folder = config_dir()
        os.environ.setdefault("YOLO_CONFIG_DIR", folder)
        os.environ.setdefault("MPLCONFIGDIR", folder)
