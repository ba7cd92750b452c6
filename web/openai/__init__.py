"""OpenAI-compatible endpoints: models, files and the Batch API (chat completions are in `web/api/chat.py`).

Built on `web/api/`, which never imports this package (`web/api/batch_variants.py`)."""
