"""Models: Model (compile/fit/evaluate/predict), Sequential, and their files."""
from .functional import Functional, Input
from .model import Model
from .saving import load_model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "Functional", "Input", "load_model"]
