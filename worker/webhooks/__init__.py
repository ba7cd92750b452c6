"""The webhook sender: runs only on the light worker (the `webhooks` queue), never in GPU processes.

- `delivery.py`: one attempt (claim the outbox row, check the URL, sign, POST, record).
- `due.py`: `dispatch_due`, beat's resend of due deliveries whose message was lost.
- `body.py`: the signed bytes, with absolute links; `signing.py`: signatures and the secrets that make them.
- `schedule.py`: when to retry; `http_post.py`: the hardened POST; `endpoint_slots.py`: per-endpoint limits.

What the web needs too (the outbox rows, their messages, the delivery log, tenant settings)
lives in `shared/webhooks/`; a new event starts in `shared/webhooks/outbox.py`.
"""
