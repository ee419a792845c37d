"""``python -m pdbviz.cli``: the ``pdbviz`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
