"""``python -m jaxotdm`` runs the command-line interface."""

import sys

from jaxotdm.cli import main

sys.exit(main())
