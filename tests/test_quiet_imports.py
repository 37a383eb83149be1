"""Importing regionset calls nobody: no socket connects or DNS look-ups (update checks, telemetry).

Every module of every top-level package is imported in a fresh interpreter whose environment has
none of the offline switches set (the packages must set their own defaults), with an audit hook
recording ``socket.connect``/``socket.getaddrinfo``/``socket.gethostbyname``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = tuple(f"regionset.{p}" for p in ("schemas", "models", "stages", "pipelines", "training"))
SWITCHES = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "HF_HUB_OFFLINE", "NO_ALBUMENTATIONS_UPDATE", "WANDB_MODE",
            "YOLO_CONFIG_DIR", "MPLCONFIGDIR", "REGIONSET_ONLINE")
SCRIPT = """
import importlib, json, pkgutil, sys, threading, time
calls = []
NET = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr")
sys.addaudithook(lambda event, args: calls.append([event, repr(args)[:200]]) if event in NET else None)
modules = []
for name in sys.argv[1:]:
    pkg = importlib.import_module(name)
    modules.append(name)
    for info in pkgutil.walk_packages(pkg.__path__, name + "."):
        if info.name.endswith("__main__"):
            continue  # running a module's CLI is not importing it
        importlib.import_module(info.name)
        modules.append(info.name)
deadline = time.time() + 3  # background update checks (albumentations runs one in a thread)
for t in threading.enumerate():
    if t is not threading.current_thread() and not t.daemon:
        t.join(max(0.0, deadline - time.time()))
time.sleep(max(0.0, deadline - time.time()))
print(json.dumps({"modules": modules, "calls": calls}))
"""


def test_importing_every_package_opens_no_socket(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(PYTHONPATH=str(REPO), HOME=str(tmp_path))  # a fresh home: no settings files from earlier runs
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *PACKAGES], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"regionset.stages.download.stage", "regionset.pipelines.cli", "regionset.training.rice.export"} <= set(got["modules"])
    assert got["calls"] == [], got["calls"]
