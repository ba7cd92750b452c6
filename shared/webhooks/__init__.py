"""Webhooks, the part both sides need: the outbox, its messages, the delivery log, tenant settings.

- `outbox.py`: the events and the delivery rows written in the transaction of the change they report.
- `enqueue.py`: the messages sent for those rows after commit.
- `delivery_log.py`: a job's deliveries as the API and the job page show them.
- `tenant_settings.py`, `tenant_secrets.py`: a tenant's default endpoint and signing secrets.

Sending (signing, retries, HTTP) is the light worker's alone: `worker/webhooks/`.
"""
