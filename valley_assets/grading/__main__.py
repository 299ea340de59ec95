"""`python -m valley_assets.grading grade ...` (also accepts the arguments without the `grade` word)."""

import sys

from valley_assets.grading.cli import main

sys.exit(main())
