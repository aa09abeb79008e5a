"""`python -m proxy.engine ...` runs the same program as `deepguard engine ...`."""

import sys

from proxy.engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
