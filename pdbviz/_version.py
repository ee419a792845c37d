"""The installed pdbviz version: a leaf module that any part of the package may import."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pdbviz")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
