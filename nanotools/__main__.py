"""``python -m nanotools`` is the ``nanotools`` command."""
import sys

from .cli import main

sys.exit(main())
