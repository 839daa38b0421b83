"""ROS-free core of lavpr_ros: encoders, place map, sequence matching, loop closure, metrics.

Nothing in this package imports rclpy (nodes are thin shells around it) or torch (the runtime
runs exported ONNX models only).
"""
