"""The node graph: one description of which nodes run with which parameters, and process control."""
