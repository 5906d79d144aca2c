"""``python -m trm_bounds.plot ...`` = ``trm-bounds plot ...`` (:mod:`trm_bounds.cli`)."""

import sys

from trm_bounds.cli import plot_main

if __name__ == "__main__":
    sys.exit(plot_main())
