"""``python -m skystack`` runs the command line."""

import sys

from skystack.cli import main

sys.exit(main())
