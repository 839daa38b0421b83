"""rosbag2 tools: write bags from image sequences, evaluate bags offline, replay them into the graph.

``writer``, ``reader`` and ``evaluate`` need no ROS (rosbags' own typestore deserializes the
messages); only ``replay`` imports rclpy.
"""
