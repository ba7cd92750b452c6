"""OpenAI-compatible endpoints: models, chat completions, files and the Batch API."""
