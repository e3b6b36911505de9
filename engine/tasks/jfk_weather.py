"""Forecast JFK's temperature 24 h ahead from 5 days of hourly weather (timeseries windows ->
recurrent layer -> Dense); reports the test MAE in degrees Fahrenheit."""
from __future__ import annotations

import os

import numpy as np

MODELS = ("lstm", "gru", "simple_rnn")


def run(args, en):
    times, values, columns = en.datasets.jfk_weather.load_data(regular=True)
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
    history = model.fit(windows(0, train_end), epochs=args.epochs, verbose=args.verbose,
                        validation_data=windows(train_end, val_end))
    test = model.evaluate(windows(val_end, None), verbose=0, return_dict=True)
    mae_f = test["mae"] * std[temp]
    print(f"test: mae {mae_f:.2f} °F (normalized {test['mae']:.4f})")
    if args.plot:
        en.utils.plot_history(history, args.plot)
        forecast = _forecast_path(args.plot)
        _plot_forecast(en, model, windows(val_end, None), times[val_end + lookback + delay - 1:],
                       mean[temp], std[temp], forecast)
        print(f"wrote {args.plot} and {forecast}")
    return model, history, {"test_mae_fahrenheit": float(mae_f)}


def _forecast_path(path):
    """curves.png -> curves_forecast.png (next to it)."""
    root, suffix = os.path.splitext(path)
    return f"{root}_forecast{suffix or '.png'}"


def _plot_forecast(en, model, test, target_times, mean, std, path):
    """Predicted vs true temperature (°F) over the test range; window k's target is the hour
    target_times[k]."""
    xs, ys = zip(*test)
    x, y = np.concatenate(xs), np.concatenate(ys)
    predicted = model.predict(x, verbose=0)[:, 0] * std + mean
    en.utils.plot_forecast(y * std + mean, predicted, path, x=target_times[:len(y)],
                           title="Temperature 24 h ahead on the test range", ylabel="°F")
