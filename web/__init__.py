"""The Flask front end: JSON API, HTML pages, health checks. Never imports torch."""
