"""The constraints files pin everything the README's commands install (nothing unpinned slips in).

After ``bash install.sh --dev`` this interpreter's environment is the one the suite runs in: every
distribution ``pip freeze`` shows must be named in ``constraints/regionset.txt`` at the same version,
and likewise the Airflow venv against ``constraints/airflow.txt``. Under ``bash .ci/run --latest``
(``REGIONSET_LATEST=1``) the set is the newest releases on purpose: the drift is reported as a skip
reason instead of a failure (``bash constraints/update.sh`` turns it into a new pinned set).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints"
AIRFLOW_PYTHON = Path(os.environ.get("AIRFLOW_VENV", REPO / ".venv-airflow")) / "bin" / "python"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(text: str) -> dict[str, str]:
    """``name -> version`` of a constraints/freeze text (comments, blanks and editables skipped)."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-e") and "==" in line:
            name, version = line.split("==", 1)
            pins[_canonical(name.split("[")[0])] = version.split(";")[0].strip()
    return pins


def drift(frozen: dict[str, str], pinned: dict[str, str]) -> list[str]:
    """What the installed set has that the pinned set does not: unpinned names and other versions."""
    out = [f"{n}=={v} (not in the constraints)" for n, v in sorted(frozen.items()) if n not in pinned]
    out += [f"{n}=={v} (pinned {pinned[n]})" for n, v in sorted(frozen.items()) if n in pinned and pinned[n] != v]
    return out


def _freeze(python: Path | str) -> dict[str, str]:
    """What ``constraints/freeze.py`` (the generator of the constraints files) writes for ``python``."""
    run = subprocess.run([sys.executable, str(CONSTRAINTS / "freeze.py"), str(python)],
                         capture_output=True, text=True, timeout=120, check=True)
    return parse_pins(run.stdout)


def _check(python: Path | str, constraints: Path) -> None:
    found = drift(_freeze(python), parse_pins(constraints.read_text()))
    if found and os.environ.get("REGIONSET_LATEST") == "1":
        pytest.skip(f"--latest run: {len(found)} distributions differ from {constraints.name}: " + ", ".join(found[:20]))
    assert not found, f"installed but not pinned in {constraints.relative_to(REPO)} (run constraints/update.sh): {found}"


def test_parse_and_drift_on_recorded_text():
    pins = parse_pins("# header\nMoto==5.2.5\nruamel.yaml==0.18.1 ; python_version>'3'\n-e git+x#egg=regionset\n\n")
    assert pins == {"moto": "5.2.5", "ruamel-yaml": "0.18.1"}
    assert drift({"moto": "5.2.6", "ruamel-yaml": "0.18.1", "new-dep": "1.0"}, pins) == [
        "new-dep==1.0 (not in the constraints)", "moto==5.2.6 (pinned 5.2.5)"]


def test_regionset_environment_is_the_pinned_set():
    _check(sys.executable, CONSTRAINTS / "regionset.txt")


def test_airflow_venv_is_the_pinned_set():
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"no Airflow venv at {AIRFLOW_PYTHON.parent.parent}: run dags/install_airflow.sh")
    _check(AIRFLOW_PYTHON, CONSTRAINTS / "airflow.txt")


def test_every_install_step_uses_the_constraints():
    install = (REPO / "install.sh").read_text()
    assert '-c constraints/regionset.txt' in install and "--latest" in install
    airflow = (REPO / "dags" / "install_airflow.sh").read_text()
    assert "constraints/airflow.txt" in airflow
