"""``python -m trm_bounds.evaluate ...`` = ``trm-bounds evaluate ...`` (:mod:`trm_bounds.cli`)."""

import sys

from trm_bounds.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
