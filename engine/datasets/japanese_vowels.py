"""Japanese Vowels (UCI; Kudo, Toyama & Shimbo 1999; CC BY 4.0; the UEA/UCR
``.ts`` copy from aeon 1.6.0): nine male speakers saying /ae/, as 12 LPC
cepstrum coefficients per frame, 7-29 frames per utterance; 270 training and
370 test utterances; the task is to name the speaker.
"""
import numpy as np

from engine.datasets._readers import bundled_file, read_ts

TRAIN_FILE, TEST_FILE = "JapaneseVowels_TRAIN.ts", "JapaneseVowels_TEST.ts"
NUM_CLASSES = 9


def _load(name, dtype):
    with bundled_file(name) as path:
        x, labels, _ = read_ts(path, dtype=dtype)
    return x, labels.astype(np.int64) - 1


def load_data(dtype="float32"):
    """Returns ``((x_train, y_train), (x_test, y_test))``.

    x: list of ``dtype`` [T_i, 12] arrays (T_i in 7..29, lengths kept; pad
    with `engine.text.pad_sequences(..., dtype="float32")` or bucket with
    `engine.data.BucketedBatches`); y: int64 [N], speaker 0..8 (file label - 1).

    >>> (x_train, y_train), (x_test, y_test) = load_data()
    >>> len(x_train), len(x_test), x_train[0].shape
    (270, 370, (20, 12))
    """
    return _load(TRAIN_FILE, dtype), _load(TEST_FILE, dtype)
