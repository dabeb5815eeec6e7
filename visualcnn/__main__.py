"""`python -m visualcnn`: the same as the `visualcnn` command."""

import sys

from .cli import main

sys.exit(main())
