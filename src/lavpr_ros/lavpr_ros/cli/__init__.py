"""The ``lavpr`` command: evaluation, bag tools, benchmarks, data and map tools."""
