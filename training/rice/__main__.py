"""``python -m regionset.training.rice CONFIG.yaml [k=v ...]`` (also under ``torchrun --nproc-per-node G``)."""

import sys

from regionset.training.cli import main

if __name__ == "__main__":
    sys.exit(main(["rice", *sys.argv[1:]]))
