"""The versioned JSON API: the `/v1` route modules and the helpers they share (reading a submission, creating
rows, pagination, idempotency, get-or-404), so a route's code is found in this one folder."""
