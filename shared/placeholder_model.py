"""The name the placeholder model (random weights, no `VLMQ_MODEL` set) goes by everywhere.

The worker's engine reports it, jobs record it, `/v1/models` lists it, and the API warns
about answers that carry it; one spelling, so those comparisons hold.
"""

PLACEHOLDER_MODEL_NAME = "vlmq/tiny-random-glm4v"
