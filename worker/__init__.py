"""Celery workers: the GPU worker that runs the model, and the light worker
(webhooks queue) that delivers webhooks and sweeps lost jobs."""
