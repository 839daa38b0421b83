"""Thin rclpy nodes over lavpr_ros.core: parameters, QoS, message conversion, publishing."""
