"""Are two utterances from the same speaker? A siamese model on UCI Japanese Vowels: one
recurrent encoder (Masking -> LSTM/GRU/Bidirectional LSTM, the japanese_vowels encoders) shared
by both inputs, the cosine of the two codes (Dot(axes=1, normalize=True)) and Dense(sigmoid)
on it. Trained on pairs of training utterances, scored by ROC AUC on pairs of test utterances
only, so no utterance of a scored pair was seen in training.

Pairs are balanced (half same speaker, half different), never repeat, and are drawn with fixed
seeds: the test pairs with TEST_SEED whatever --seed is, so runs are scored on the same pairs.
"""
from __future__ import annotations

import numpy as np

from .japanese_vowels import normalize_frames, pad_for_masking, recurrent_encoder

MODELS = ("lstm", "gru", "bilstm")
DEFAULTS = {"epochs": 20}
TRAIN_PAIRS, TEST_PAIRS = 4000, 4000
TEST_SEED = 12345


def sample_pairs(labels, n_pairs, seed):
    """Balanced pairs of distinct items: n_pairs/2 with equal labels, n_pairs/2 with different
    ones, no unordered pair twice, in a shuffled order drawn from default_rng(seed).

    labels: [N] class ids. Returns (first [n_pairs], second [n_pairs]) indices into labels and
    same [n_pairs] float32 (1 = same label); first < second in every pair.

    Example:
        >>> labels = np.array([0, 0, 1, 1])
        >>> first, second, same = sample_pairs(labels, 4, seed=0)
        >>> int(same.sum()), bool(((labels[first] == labels[second]) == same).all())
        (2, True)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"sample_pairs: labels must be [N], got shape {labels.shape}")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 2 or n_pairs % 2:
        raise ValueError(f"sample_pairs: n_pairs must be a positive even int (half same, half different), "
                         f"got {n_pairs!r}")
    first, second = np.triu_indices(len(labels), k=1)       # every unordered pair once
    same = labels[first] == labels[second]
    rng = np.random.default_rng(seed)
    chosen = []
    for kind, candidates in (("same-label", np.flatnonzero(same)), ("different-label", np.flatnonzero(~same))):
        if len(candidates) < n_pairs // 2:
            raise ValueError(f"sample_pairs: {n_pairs} pairs need {n_pairs // 2} {kind} pairs, "
                             f"but {len(labels)} labels give only {len(candidates)}")
        chosen.append(rng.choice(candidates, n_pairs // 2, replace=False))
    picked = rng.permutation(np.concatenate(chosen))
    return first[picked], second[picked], same[picked].astype(np.float32)


def pairs_of(x, labels, n_pairs, seed):
    """([x_first, x_second], same): the inputs of n_pairs pairs drawn from one split.

    x: [N, T, 12] padded utterances of that split; labels: [N] speakers.
    """
    first, second, same = sample_pairs(labels, n_pairs, seed)
    return [x[first], x[second]], same


def build_model(en, kind, units):
    """The siamese model: ([B, T, 12], [B, T, 12]) -> P(same speaker) [B, 1]."""
    a, b = en.Input((None, 12), name="first"), en.Input((None, 12), name="second")
    encoder = recurrent_encoder(en, kind, units)   # the same layer objects encode both inputs

    def encode(x):
        for layer in encoder:
            x = layer(x)
        return x
    cosine = en.layers.Dot(axes=1, normalize=True)([encode(a), encode(b)])
    head = en.layers.Dense(1, activation="sigmoid")
    model = en.Model([a, b], head(cosine), name=f"vowel_pairs_{kind}")
    # P(same) = sigmoid(w·cosine + b) must rise with the cosine. A random 1x1 kernel is negative
    # half the time, and then training pushes same-speaker codes apart (test AUC < 0.5 seen with
    # bilstm); starting at w = 5 gives the right sign and logits in [-5, 5].
    head.set_weights([np.full((1, 1), 5.0, np.float32), np.zeros(1, np.float32)])
    return model


def run(args, en):
    (x_train, y_train), (x_test, y_test) = en.datasets.japanese_vowels.load_data()
    x_train, x_test = (pad_for_masking(en, split) for split in normalize_frames(en, x_train, x_test))
    train_inputs, train_same = pairs_of(x_train, y_train, TRAIN_PAIRS, args.seed)
    test_inputs, test_same = pairs_of(x_test, y_test, TEST_PAIRS, TEST_SEED)
    print(f"{len(train_same)} training pairs of {len(x_train)} train utterances, {len(test_same)} test "
          f"pairs of {len(x_test)} test utterances; half of each from one speaker")
    model = build_model(en, args.model, args.units)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["acc"])
    history = model.fit(train_inputs, train_same, epochs=args.epochs, batch_size=args.batch_size,
                        verbose=args.verbose)
    loss, accuracy = model.evaluate(test_inputs, test_same, batch_size=args.batch_size, verbose=0)
    auc = en.metrics.roc_auc(test_same, model.predict(test_inputs, batch_size=args.batch_size, verbose=0))
    print(f"test pairs: loss {loss:.4f} - acc {accuracy:.4f} - roc_auc {auc:.4f}")
    if args.plot:
        en.utils.plot_history(history, args.plot)
        print(f"wrote {args.plot}")
    return model, history, {"test_loss": loss, "test_acc": accuracy, "test_roc_auc": auc}
