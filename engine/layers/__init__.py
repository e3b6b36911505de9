"""Keras-style layers. Weights use Keras 3's order and shapes (get_weights/set_weights)."""
from .base import Layer
from .convolutional import Conv1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .core import Activation, Dense, Dropout, Embedding, Flatten, Masking
from .input_layer import InputLayer
from .merging import Add, Average, Concatenate, Dot, Multiply, Subtract
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from .reshaping import RepeatVector, TimeDistributed

__all__ = ["Layer", "Activation", "Dense", "Dropout", "Embedding", "Flatten", "Masking", "SimpleRNN",
           "LSTM", "GRU", "Bidirectional", "Conv1D", "MaxPooling1D", "GlobalMaxPooling1D",
           "GlobalAveragePooling1D", "InputLayer", "Add", "Subtract", "Multiply", "Average",
           "Concatenate", "Dot", "RepeatVector", "TimeDistributed"]
