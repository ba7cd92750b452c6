"""Webhooks: signing, URL safety, the outbox, and the retry schedule.

Shared by the web (submit-time checks, delivery log), the GPU worker (outbox rows
written inside job transitions) and the webhook worker (which alone sends HTTP,
from `worker.webhook_delivery`).
"""
