"""Make the helper modules of this folder (pubsub_peers) importable by the tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
