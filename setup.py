"""Build hook: the teaching notebooks travel inside the wheel.

Everything else about the package is in pyproject.toml. The notebooks' source
stays in the top-level ``notebooks/``; building a wheel copies them to
``pdbviz/notebooks/`` in the build tree, where ``pdbviz lab`` finds them after
installation. (An editable install needs no copy: ``pdbviz lab`` reads the
checkout's ``notebooks/``.) The sdist carries them through MANIFEST.in.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithNotebooks(build_py):
    """``build_py`` that also copies ``notebooks/*.ipynb`` into ``pdbviz/notebooks``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        sources = sorted(Path("notebooks").glob("*.ipynb"))
        if not sources:
            raise FileNotFoundError("no notebooks/*.ipynb to ship with the package")
        target = Path(self.build_lib, "pdbviz", "notebooks")
        self.mkpath(str(target))
        for stale in target.glob("*.ipynb"):
            if stale.name not in {p.name for p in sources}:
                stale.unlink()
        for notebook in sources:
            self.copy_file(str(notebook), str(target / notebook.name))


setup(cmdclass={"build_py": BuildPyWithNotebooks})
