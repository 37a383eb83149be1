"""regionset: image URLs -> labelled image-region datasets -> RICE / Croc training.

Everything imports as ``regionset.*``: ``regionset.common``, ``regionset.schemas``, ``regionset.models``,
``regionset.stages``, ``regionset.pipelines``, ``regionset.training``. Their code lives in the
repository's top-level folders of the same names (common/, schemas/, ...); pyproject.toml maps them
under this package (package-dir), for wheels and editable installs alike.
"""

import os as _os

# A source checkout that is not installed (PYTHONPATH=<checkout>, e.g. bench/gpu/run.sh on a device
# machine): the subpackages are the checkout's top-level folders beside this one. Installed (wheel or
# editable) the check is false or redundant: a wheel has them inside this folder.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_checkout, "pyproject.toml")) and _os.path.isfile(
        _os.path.join(_checkout, "pipelines", "__init__.py")):
    __path__.append(_checkout)  # noqa: F821  (a package's __path__)
del _os, _checkout
