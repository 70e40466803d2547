"""``python -m tess.conformance --backend NAME [--report PATH] [--profile ci|thorough]``."""

from tess.conformance.runner import main

raise SystemExit(main())
