"""lavpr_ros: online visual (and language) place recognition for ROS 2 robots."""

__version__ = "0.1.0"
