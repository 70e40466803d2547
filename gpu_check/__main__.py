"""Entry point: ``python -m gpu_check``."""

import sys

from .runner import main

sys.exit(main())
