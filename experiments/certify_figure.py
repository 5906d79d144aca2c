"""Entry script of the study :mod:`trm_bounds.studies.certify_figure` (its flags: ``--help``).

Same as ``python -m trm_bounds.studies.certify_figure``; the study itself lives in the package.
"""

import sys

from trm_bounds.studies.certify_figure import main

if __name__ == "__main__":
    sys.exit(main())
