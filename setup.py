"""The wheel carries the top-level folders of the design inside the package (service/_bundled),
so an installed copy finds its templates, migrations and seed data through importlib.resources
(service/platform/resources.py). Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("templates", "migrations", "data", "alembic.ini")


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads them from the checkout
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "service" / "_bundled"
        for name in SHIPPED:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithShippedFiles})
