"""The inference engine: model loading, prompts, generation and output parsing.

Import-safe in a Celery parent process: torch and CUDA are only touched inside
`load_engine` and the engine it returns.
"""

from worker.inference.loader import load_engine

__all__ = ["load_engine"]
