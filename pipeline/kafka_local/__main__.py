"""``python -m pipeline.kafka_local up|down|status``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
