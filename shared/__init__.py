"""Code both the web front end and the workers import: settings, models, job states.

Nothing here imports Flask or torch.
"""
