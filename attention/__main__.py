"""``python -m attention`` runs the command line (see :mod:`attention.cli`)."""

import sys

from attention.cli import main

sys.exit(main())
