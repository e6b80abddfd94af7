"""``python -m attention`` runs the command line (see :mod:`attention.application.cli`)."""

import sys

from attention.application.cli import main

sys.exit(main())
