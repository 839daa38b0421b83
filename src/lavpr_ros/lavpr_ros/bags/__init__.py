"""rosbag2 tools: bags from image sequences, offline bag evaluation, replay into the node graph.

``writer``, ``reader`` and ``evaluate`` need no ROS (rosbags' own typestore deserializes the
messages); only ``replay`` imports rclpy.
"""
