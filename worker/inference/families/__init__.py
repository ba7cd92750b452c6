"""Model families, one module per family; the table that picks one is `registry.py`."""
