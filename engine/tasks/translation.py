"""English -> French on the bundled Tatoeba pairs: an encoder (Embedding -> GRU, or a
Bidirectional GRU whose two final states are summed) whose final state starts a GRU decoder,
trained with teacher forcing and a masked sparse_categorical_crossentropy; reports corpus
BLEU-4 of greedy translations of a held-out 10% of the English sentences (all French
translations of a sentence are its references) and prints a few of them."""
from __future__ import annotations

import collections
import time

import numpy as np

from .. import translation as tr

MODELS = ("bigru", "gru")
# --units is also the embedding size; --max-tokens caps each vocabulary (French has 6,790
# tokens, 3,237 of them seen once); --sequence-length caps the tokens of a sentence (the
# French side counts [start] and [end]): 20 truncates nothing here. Chosen on a validation
# split of the training sentences (docs/translation.md).
DEFAULTS = {"epochs": 10, "batch_size": 64, "units": 128, "max_tokens": 3000, "sequence_length": 20}
LEARNING_RATE = 4e-3  # Adam; 1e-3 and 2e-3 needed twice the epochs for the same BLEU
DROPOUT = 0.5
SAMPLES = 8  # translations printed


def build_model(kind, source_size, target_size, units, en):
    """[source ids [B,S], decoder inputs [B,T]] -> next-token probabilities [B,T,target_size]."""
    L = en.layers
    source = en.Input((None,), dtype="int64", name="source")
    past_target = en.Input((None,), dtype="int64", name="past_target")
    x = L.Embedding(source_size, units, mask_zero=True, name=tr.SOURCE_EMBEDDING)(source)
    if kind == "bigru":
        encoder = L.Bidirectional(L.GRU(units, name="encoder_gru"), merge_mode="sum", name=tr.ENCODER)
    else:
        encoder = L.GRU(units, name=tr.ENCODER)
    state = encoder(x)                                                          # [B, H]
    y = L.Embedding(target_size, units, mask_zero=True, name=tr.TARGET_EMBEDDING)(past_target)
    y = L.GRU(units, return_sequences=True, name=tr.DECODER)(y, initial_state=[state])   # [B, T, H]
    y = L.Dropout(DROPOUT, name="decoder_dropout")(y)
    probabilities = L.Dense(target_size, activation="softmax", name=tr.NEXT_TOKEN)(y)
    return en.Model([source, past_target], probabilities, name=f"translation_{kind}")


class LengthBatches:
    """([source [B,S_b], decoder inputs [B,T_b]], targets [B,T_b]) batches of pairs with
    similar French lengths, each trimmed to its longest member; a new shuffle of members and
    of batch order on every pass. Short sentences dominate, so this computes ~2x fewer
    padded steps than batches padded to the longest sentence."""

    def __init__(self, source, decoder_inputs, targets, batch_size, seed):
        self.source, self.decoder_inputs, self.targets = source, decoder_inputs, targets
        self.batch_size, self._rng = batch_size, np.random.default_rng(seed)
        self._lengths = (targets != 0).sum(axis=1)

    def __len__(self):
        return -(-len(self.targets) // self.batch_size)

    def __iter__(self):
        order = self._rng.permutation(len(self.targets))
        order = order[np.argsort(self._lengths[order], kind="stable")]  # by length, random within
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for b in self._rng.permutation(len(batches)):
            idx = batches[b]
            s = max(int((self.source[idx] != 0).sum(axis=1).max()), 1)
            t = int(self._lengths[idx].max())
            yield [self.source[idx, :s], self.decoder_inputs[idx, :t]], self.targets[idx, :t]


def _vectorize(pairs, max_tokens, length, en):
    """Vocabularies adapted on `pairs`, and the pairs as (source [N,S], decoder inputs
    [N,T-1], targets [N,T-1]) with the French side wrapped in [start] ... [end]."""
    sources = [tr.standardize(e) for e, _ in pairs]
    targets = [f"{tr.START} {tr.standardize(f)} {tr.END}" for _, f in pairs]
    source_tv = en.text.TextVectorization(max_tokens, standardize=None, output_sequence_length=length)
    target_tv = en.text.TextVectorization(max_tokens, standardize=None, output_sequence_length=length)
    source_tv.adapt(sources)
    target_tv.adapt(targets)
    ids = target_tv(targets)
    return source_tv, target_tv, (source_tv(sources), ids[:, :-1], ids[:, 1:])


def evaluate_bleu(model, pairs, source_vocabulary, target_vocabulary, max_length, batch_size=256):
    """Corpus BLEU-4 (0-100) of greedy translations of every distinct English sentence in
    `pairs`, against all its French translations; tokens are those of tr.standardize.
    Returns (bleu, [(english, hypothesis tokens, reference token lists)])."""
    from ..metrics import corpus_bleu
    references = collections.defaultdict(list)
    for english, french in pairs:
        references[english].append(tr.standardize(french).split())
    sources = list(references)
    vectorize = tr.vectorizer(source_vocabulary)
    start, end = target_vocabulary.index(tr.START), target_vocabulary.index(tr.END)
    hypotheses = []
    for i in range(0, len(sources), batch_size):
        ids, _ = tr.greedy_decode(model, vectorize([tr.standardize(s) for s in sources[i:i + batch_size]]),
                                  start, end, max_length)
        hypotheses += tr.to_tokens(ids, target_vocabulary)
    bleu = 100 * corpus_bleu(hypotheses, [references[s] for s in sources])
    return bleu, [(s, h, references[s]) for s, h in zip(sources, hypotheses)]


def run(args, en, pairs=None):
    """`pairs` replaces the bundled data (the tests train on a slice)."""
    from ..datasets import translation as data
    train, test = data.split_by_source(data.load_data() if pairs is None else pairs, seed=args.seed)
    source_tv, target_tv, (source, decoder_inputs, targets) = _vectorize(
        train, args.max_tokens, args.sequence_length, en)
    source_vocabulary, target_vocabulary = source_tv.get_vocabulary(), target_tv.get_vocabulary()
    print(f"{len(train)} training pairs, {len({e for e, _ in test})} held-out English sentences "
          f"({len(test)} pairs); vocabularies: {len(source_vocabulary)} English, "
          f"{len(target_vocabulary)} French tokens")
    model = build_model(args.model, len(source_vocabulary), len(target_vocabulary), args.units, en)
    model.compile(optimizer=en.optimizers.Adam(learning_rate=LEARNING_RATE),
                  loss="sparse_categorical_crossentropy", metrics=["acc"])
    history = model.fit(LengthBatches(source, decoder_inputs, targets, args.batch_size, args.seed),
                        epochs=args.epochs, verbose=args.verbose)
    start = time.perf_counter()
    max_length = args.sequence_length - 1  # tokens after [start], [end] included
    bleu, translations = evaluate_bleu(model, test, source_vocabulary, target_vocabulary, max_length)
    seconds = time.perf_counter() - start
    print(f"test: BLEU-4 {bleu:.2f} on {len(translations)} sentences (greedy decoding {seconds:.1f}s)")
    for english, hypothesis, references in translations[:: max(len(translations) // SAMPLES, 1)][:SAMPLES]:
        print(f"  {english!r} -> {' '.join(hypothesis)!r}   (reference: {' '.join(references[0])!r})")
    if args.save:
        print(f"vocabularies: {tr.save_vocabularies(args.save, source_vocabulary, target_vocabulary, max_length)}")
    return model, history, {"test_bleu": bleu, "test_sentences": len(translations),
                            "decode_seconds": seconds}
