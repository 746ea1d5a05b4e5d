"""`python -m runyard.engine WORKSPACE [--accept-unauthenticated]`: the background scheduler service
(started by submit; the flag only by a server without --auth that was started as compute)."""

import sys

from runyard.engine.service import main

main(sys.argv[1:])
