"""``python -m trtnet.export-triton``: the spelling the docs use for :mod:`trtnet.export_triton`."""

import sys

from trtnet.export_triton import main

if __name__ == "__main__":
    sys.exit(main())
