"""``python -m reference_crm``: the demo (the same as the ``crm-demo`` console script)."""

import sys

from reference_crm.demo import run_demo

sys.exit(run_demo())
