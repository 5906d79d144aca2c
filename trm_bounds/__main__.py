"""``python -m trm_bounds ...``: the ``trm-bounds`` command line (:mod:`trm_bounds.cli`)."""

import sys

from trm_bounds.cli import main

if __name__ == "__main__":
    sys.exit(main())
