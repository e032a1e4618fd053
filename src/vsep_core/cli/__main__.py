"""`python -m vsep_core.cli` runs the vsep command."""

import sys

from vsep_core.cli import main

sys.exit(main())
