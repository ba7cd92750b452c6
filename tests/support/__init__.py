"""Test helpers, one home: requests and rows (helpers, factories), real servers (services), the `vlmq` command
(live_service), a webhook endpoint (webhook_receiver), a labelled catalogue (catalogue), a browser (browser)."""
