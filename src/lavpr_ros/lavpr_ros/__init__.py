"""lavpr_ros: online visual (and language) place recognition for ROS 2 robots."""

import os

# faiss runs its searches on OpenMP threads that, by default, spin for a while after every call;
# on a 2-core robot computer they then take the cores from the numpy work that follows (the
# sequence matcher): search + sequence p95 at 1M places 56 -> 40 ms with passive waiting
# (docs/scale.md). Set before faiss loads; an explicit OMP_WAIT_POLICY is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
