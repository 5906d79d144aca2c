"""Entry script of the study :mod:`trm_bounds.studies.worst_case_certificate` (its flags: ``--help``).

Same as ``python -m trm_bounds.studies.worst_case_certificate``; the study itself lives in the package.
"""

import sys

from trm_bounds.studies.worst_case_certificate import main

if __name__ == "__main__":
    sys.exit(main())
