"""The versioned JSON API."""
