"""Models: Model (compile/fit/evaluate/predict), Sequential, and their files."""
from .model import Model
from .saving import load_model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]
