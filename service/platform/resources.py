"""Where the files that ship with the code are found, in a checkout and in an installed wheel.

The design keeps templates/, migrations/, data/ and alembic.ini at the top of the tree; the
wheel's build (setup.py) copies them into the package as ``service/_bundled/``. Static files,
catalogues and reward policies already live inside their packages. Everything is looked up
through importlib.resources, so neither layout is walked up to from a source file.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

# The top of a checkout, when the code runs from one (an editable install or the tree itself).
CHECKOUT = Path(str(importlib.resources.files("service"))).parent


def shipped(name: str) -> Path:
    """A top-level folder or file of the design: templates, migrations, data, alembic.ini."""
    bundled = importlib.resources.files("service").joinpath("_bundled", name)
    if bundled.is_dir() or bundled.is_file():
        return Path(str(bundled))
    return CHECKOUT / name


def package_data(package: str, *parts: str) -> Path:
    """A folder or file inside one of our packages (static files, catalogues, policies)."""
    return Path(str(importlib.resources.files(package).joinpath(*parts)))


def in_checkout() -> bool:
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "service").is_dir()
