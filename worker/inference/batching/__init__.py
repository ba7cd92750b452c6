"""Continuous batching for GLM-4.1V/4.6V: many jobs share one decode step.

A decode step is launch-bound (thousands of small kernels), so one request at a time
leaves the GPU idle. Here every running job owns a slot of a static KV cache; new
jobs are prefilled together and join at step boundaries, finished or canceled ones
leave, and the step over all slots is captured once as a CUDA graph per batch size.
"""
