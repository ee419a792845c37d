"""``python -m pdbviz.cli``: the ``pdbviz`` command."""

import sys

from . import main

sys.exit(main())
