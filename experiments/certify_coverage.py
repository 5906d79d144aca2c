"""Coverage of the certified bounds (trm_bounds.studies.certify_coverage)."""

import sys

from trm_bounds.studies.certify_coverage import main

if __name__ == "__main__":
    sys.exit(main())
