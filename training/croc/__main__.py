"""``python -m regionset.training.croc CONFIG.yaml [k=v ...]`` (also under ``torchrun --nproc-per-node G``)."""

import sys

from regionset.training.cli import main

if __name__ == "__main__":
    sys.exit(main(["croc", *sys.argv[1:]]))
