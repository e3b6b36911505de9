"""The `seqfuse` command (also `python -m engine`).

    seqfuse train --data movie_reviews --model lstm --epochs 3   # the main job, on bundled data
    seqfuse train --data jfk_weather --model gru                  # 24 h temperature forecast
    seqfuse info                                                  # backends here, and why not
    seqfuse parity                                                # every backend vs the reference
    seqfuse bench                                                 # our kernels beside PyTorch
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _text_model(kind, vocabulary, units, L):
    embed = L.Embedding(vocabulary, 32, mask_zero=kind != "conv1d")
    body = {
        "lstm": [L.LSTM(units)], "gru": [L.GRU(units)], "simple_rnn": [L.SimpleRNN(units)],
        "bilstm": [L.Bidirectional(L.LSTM(units))],
        "conv1d": [L.Conv1D(units, 5, activation="relu"), L.MaxPooling1D(2),
                   L.Conv1D(units, 5, activation="relu"), L.GlobalMaxPooling1D()],
    }[kind]
    return [embed] + body + [L.Dense(1, activation="sigmoid")]


def _train_movie_reviews(args, en):
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
                        batch_size=args.batch_size, validation_split=0.2)
    loss, accuracy = model.evaluate(x_test, y_test.astype(np.float32), batch_size=args.batch_size)
    print(f"test: loss {loss:.4f} - acc {accuracy:.4f}")
    return model, history, {"test_loss": loss, "test_acc": accuracy}


def _train_jfk_weather(args, en):
    _, values, columns = en.datasets.jfk_weather.load_data(regular=True)
    hours = len(values)
    train_end, val_end = int(hours * 0.6), int(hours * 0.8)
    mean, std = en.data.fit_normalization(values, train_end=train_end)
    series = ((values - mean) / std).astype(np.float32)
    temp = columns.index("temp")
    lookback, delay, step = args.sequence_length * 3, 24, 3  # 5 days seen every 3 h, 24 h ahead
    targets = series[lookback + delay - 1:, temp]

    def windows(start, end):
        return en.data.timeseries_dataset_from_array(
            series[:-delay], targets, sequence_length=lookback // step, sampling_rate=step,
            batch_size=args.batch_size, start_index=start, end_index=end)

    layer = {"lstm": en.layers.LSTM, "gru": en.layers.GRU, "simple_rnn": en.layers.SimpleRNN}.get(args.model)
    if layer is None:
        raise SystemExit(f"seqfuse train: --model for jfk_weather must be lstm, gru or simple_rnn, got {args.model}")
    model = en.Sequential([layer(args.units), en.layers.Dense(1)])
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    history = model.fit(windows(0, train_end), epochs=args.epochs,
                        validation_data=windows(train_end, val_end))
    test = model.evaluate(windows(val_end, None), return_dict=True)
    mae_f = test["mae"] * std[temp]
    print(f"test: mae {mae_f:.2f} °F (normalized {test['mae']:.4f})")
    return model, history, {"test_mae_fahrenheit": float(mae_f)}


def _train(args):
    import engine as en
    en.set_random_seed(args.seed)
    if args.backend:
        en.set_backend(args.backend)
    print(f"backend: {en.get_backend()} (available: {', '.join(en.backends.available())})")
    start = time.perf_counter()
    task = {"movie_reviews": _train_movie_reviews, "jfk_weather": _train_jfk_weather}[args.data]
    model, history, results = task(args, en)
    print(f"trained in {time.perf_counter() - start:.1f}s")
    if args.save:
        model.save(args.save)
        print(f"saved model to {args.save}")
    if args.history:
        with open(args.history, "w") as f:
            json.dump({"history": history.history, **results}, f, indent=1)
    return 0


def _info(args):
    import engine as en
    print(f"seqfuse {en.__version__}; default CPU backend: {en.get_backend()}")
    for name in en.backends.names():
        module = en.backends._discover()[name]
        status = "available" if module.available() else f"unavailable: {module.why_unavailable()}"
        print(f"  {name:<10} {module.DEVICE:<5} {status}")
    return 0


def _parity(args):
    from .parity import main
    return main(args)


def _bench(args):
    from .benchmark import main
    return main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqfuse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model on a bundled data set")
    train.add_argument("--data", choices=["movie_reviews", "jfk_weather"], default="movie_reviews")
    train.add_argument("--model", choices=["lstm", "gru", "simple_rnn", "bilstm", "conv1d"], default="lstm")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--units", type=int, default=32)
    train.add_argument("--max-tokens", type=int, default=10000)
    train.add_argument("--sequence-length", type=int, default=40,
                       help="tokens per review (movie_reviews); hours/3 of lookback (jfk_weather)")
    train.add_argument("--backend", help="reference, numba, cpp (default: fastest available)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--save", help="write the trained model here (.npz)")
    train.add_argument("--history", help="write per-epoch history and test results here (JSON)")
    train.set_defaults(run=_train)
    sub.add_parser("info", help="list backends").set_defaults(run=_info)
    parity = sub.add_parser("parity", help="every backend against the reference, per op and gradient")
    parity.add_argument("--seed", type=int, default=0)
    parity.set_defaults(run=_parity)
    bench = sub.add_parser("bench", help="time our kernels beside PyTorch CPU")
    bench.add_argument("--ops", default="lstm,gru,simple_rnn,conv1d,embedding")
    bench.add_argument("--repeat", type=int, default=5)
    bench.add_argument("--quick", action="store_true", help="smallest size of each op only")
    bench.add_argument("--backends", help="comma-separated (default: every available CPU backend)")
    bench.add_argument("--markdown", action="store_true", help="print a Markdown table")
    bench.set_defaults(run=_bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, IndexError, FileNotFoundError) as exc:
        print(f"seqfuse {args.command}: {exc}", file=sys.stderr)
        return 2
