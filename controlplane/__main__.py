"""Allow `python -m controlplane ...` as an alias of the `controlplane` console script."""

import sys

from controlplane.cli import main

sys.exit(main())
