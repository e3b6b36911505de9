"""Forecast JFK's temperature 24 h ahead from 5 days of hourly weather (timeseries windows ->
recurrent layer -> Dense); reports the test MAE in degrees Fahrenheit."""
from __future__ import annotations

import numpy as np

MODELS = ("lstm", "gru", "simple_rnn")


def run(args, en):
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

    layer = {"lstm": en.layers.LSTM, "gru": en.layers.GRU, "simple_rnn": en.layers.SimpleRNN}[args.model]
    model = en.Sequential([layer(args.units), en.layers.Dense(1)])
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    history = model.fit(windows(0, train_end), epochs=args.epochs,
                        validation_data=windows(train_end, val_end))
    test = model.evaluate(windows(val_end, None), return_dict=True)
    mae_f = test["mae"] * std[temp]
    print(f"test: mae {mae_f:.2f} °F (normalized {test['mae']:.4f})")
    return model, history, {"test_mae_fahrenheit": float(mae_f)}
