"""Sentiment of Rotten Tomatoes sentences: TextVectorization -> Embedding -> recurrent or
convolutional body -> Dense(sigmoid); reports test accuracy."""
from __future__ import annotations

import time

import numpy as np

MODELS = ("lstm", "gru", "simple_rnn", "bilstm", "conv1d")


def _text_model(kind, vocabulary, units, L):
    embed = L.Embedding(vocabulary, 32, mask_zero=kind != "conv1d")
    body = {
        "lstm": [L.LSTM(units)], "gru": [L.GRU(units)], "simple_rnn": [L.SimpleRNN(units)],
        "bilstm": [L.Bidirectional(L.LSTM(units))],
        "conv1d": [L.Conv1D(units, 5, activation="relu"), L.MaxPooling1D(2),
                   L.Conv1D(units, 5, activation="relu"), L.GlobalMaxPooling1D()],
    }[kind]
    return [embed] + body + [L.Dense(1, activation="sigmoid")]


def run(args, en):
    (x_train, y_train), (x_test, y_test) = en.datasets.movie_reviews.load_data(seed=args.seed)
    vectorize = en.text.TextVectorization(max_tokens=args.max_tokens,
                                          output_sequence_length=args.sequence_length)
    start = time.perf_counter()
    vectorize.adapt(x_train)
    print(f"vocabulary: {vectorize.vocabulary_size()} tokens (adapt {time.perf_counter() - start:.2f}s); "
          f"{len(x_train)} train / {len(x_test)} test sentences")
    x_train, x_test = vectorize(x_train), vectorize(x_test)
    model = en.Sequential(_text_model(args.model, vectorize.vocabulary_size(), args.units, en.layers))
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    history = model.fit(x_train, y_train.astype(np.float32), epochs=args.epochs,
                        batch_size=args.batch_size, validation_split=0.2, verbose=args.verbose)
    loss, accuracy = model.evaluate(x_test, y_test.astype(np.float32), batch_size=args.batch_size, verbose=0)
    print(f"test: loss {loss:.4f} - acc {accuracy:.4f}")
    if args.plot:
        en.utils.plot_history(history, args.plot)
        print(f"wrote {args.plot}")
    return model, history, {"test_loss": loss, "test_acc": accuracy}
