"""``python -m jaxotdm`` runs the command-line interface."""

import sys

from jaxotdm.cli import main

if __name__ == "__main__":
    sys.exit(main())
