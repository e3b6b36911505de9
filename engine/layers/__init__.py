"""Keras-style layers. Weights use Keras 3's order and shapes (get_weights/set_weights)."""
from .base import Layer
from .convolutional import Conv1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .core import Activation, Dense, Dropout, Embedding, Flatten
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = ["Layer", "Activation", "Dense", "Dropout", "Embedding", "Flatten", "SimpleRNN", "LSTM",
           "GRU", "Bidirectional", "Conv1D", "MaxPooling1D", "GlobalMaxPooling1D",
           "GlobalAveragePooling1D"]
