"""``python -m als_assets.loader``: the same as the als-load-movielens console script."""

import sys

from .cli import main

sys.exit(main())
