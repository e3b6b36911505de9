"""Which of 9 speakers said /ae/? UCI Japanese Vowels: 12 LPC cepstrum coefficients per frame,
7-29 frames per utterance, 270 train / 370 test. Every utterance is used whole (no truncation):
frames are normalized with training statistics, then

- lstm, gru, bilstm: zero-padded and masked (Masking -> recurrent layer -> Dense(softmax)); the
  recurrent layer skips the padding, so a prediction does not depend on how much there was.
  lstm and gru drop 10% of inputs and recurrent state and 20% of the final state while
  training (with 270 utterances they overfit otherwise);
- conv1d: batches of equal-length utterances (no padding at all, because Conv1D and its
  pooling do not take masks, as in Keras) -> Conv1D x2 -> GlobalMaxPooling1D -> Dense(softmax).

Reports test accuracy. The architectures and the epoch count were chosen on a shuffled quarter of the
training split held out (mean of 3 seeds), never on the test split.
"""
from __future__ import annotations

import numpy as np

MODELS = ("lstm", "gru", "bilstm", "conv1d")
DEFAULTS = {"epochs": 100}


def normalize_frames(en, x_train, *others):
    """Per-coefficient mean/std over every training frame, applied to each split.

    x_train, others: lists of [T_i, 12] arrays; returns the lists normalized (float32).
    """
    mean, std = en.data.fit_normalization(np.concatenate(x_train))
    return [[((x - mean) / std).astype(np.float32) for x in split] for split in (x_train, *others)]


def pad_for_masking(en, sequences):
    """[T_i, F] arrays -> [N, max T_i, F] float32, zero-padded after each utterance.

    Masking(mask_value=0.0) then masks exactly the padding: a real frame with every
    coefficient exactly 0 would be masked too, so one is refused here.
    """
    if any(not np.any(s, axis=-1).all() for s in sequences):
        raise ValueError("pad_for_masking: a frame is all zeros and would be masked as padding")
    return en.text.pad_sequences(sequences, dtype="float32", padding="post", value=0.0)


def equal_length_batches(en, x, y, batch_size, shuffle, seed):
    """(x [B, T, 12], y [B]) batches whose utterances all have one length T, so nothing is padded."""
    lengths = sorted({len(s) for s in x})
    return en.data.BucketedBatches(x, y, batch_size=batch_size, bucket_boundaries=lengths[1:] or None,
                                   shuffle=shuffle, seed=seed, dtype="float32")


def recurrent_encoder(en, kind, units):
    """The layers that turn masked frames [B, T, 12] into one vector [B, units] (lstm, gru;
    [B, 2·units] for bilstm): Masking, the recurrent layer, and dropout where it helps."""
    L = en.layers
    if kind == "bilstm":
        return [L.Masking(mask_value=0.0), L.Bidirectional(L.LSTM(units))]
    rnn = {"lstm": L.LSTM, "gru": L.GRU}[kind]
    return [L.Masking(mask_value=0.0), rnn(units, dropout=0.1, recurrent_dropout=0.1), L.Dropout(0.2)]


def build_model(en, kind, units, num_classes):
    """The Sequential model for --model `kind` (input: [B, T, 12] frames)."""
    L = en.layers
    if kind == "conv1d":
        body = [L.Conv1D(units, 3, padding="same", activation="relu"),
                L.Conv1D(units, 3, padding="same", activation="relu"), L.GlobalMaxPooling1D()]
    else:
        body = recurrent_encoder(en, kind, units)
    return en.Sequential(body + [L.Dense(num_classes, activation="softmax")], name=f"japanese_vowels_{kind}")


def run(args, en):
    dataset = en.datasets.japanese_vowels
    (x_train, y_train), (x_test, y_test) = dataset.load_data()
    x_train, x_test = normalize_frames(en, x_train, x_test)
    lengths = [len(s) for s in x_train + x_test]
    print(f"{len(x_train)} train / {len(x_test)} test utterances, {min(lengths)}-{max(lengths)} frames "
          f"of {x_train[0].shape[1]} coefficients; {dataset.NUM_CLASSES} speakers")
    model = build_model(en, args.model, args.units, dataset.NUM_CLASSES)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    if args.model == "conv1d":
        train = equal_length_batches(en, x_train, y_train, args.batch_size, True, args.seed)
        history = model.fit(train, epochs=args.epochs, verbose=args.verbose)
        test = equal_length_batches(en, x_test, y_test, args.batch_size, False, None)
        loss, accuracy = model.evaluate(test, verbose=0)
    else:
        history = model.fit(pad_for_masking(en, x_train), y_train, epochs=args.epochs,
                            batch_size=args.batch_size, verbose=args.verbose)
        loss, accuracy = model.evaluate(pad_for_masking(en, x_test), y_test, batch_size=args.batch_size,
                                        verbose=0)
    print(f"test: loss {loss:.4f} - acc {accuracy:.4f}")
    if args.plot:
        en.utils.plot_history(history, args.plot)
        print(f"wrote {args.plot}")
    return model, history, {"test_loss": loss, "test_acc": accuracy}
