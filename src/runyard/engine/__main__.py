"""`python -m runyard.engine WORKSPACE`: the background scheduler service (started by submit)."""

import sys

from runyard.engine.service import main

main(sys.argv[1:])
