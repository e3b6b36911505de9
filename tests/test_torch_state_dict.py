"""PyTorch state_dicts in and out (engine/convert.py, Model.load_torch_state_dict /
torch_state_dict), checked against real torch modules: same outputs after conversion, both ways."""
from __future__ import annotations

import numpy as np
import pytest

import engine as en
from engine import convert
from engine import layers as L

torch = pytest.importorskip("torch")

# float32 both sides; a wrong transpose or gate order moves outputs by O(0.1).
ATOL = 1e-5
T = 9


class _Torch(torch.nn.Module):
    """Embedding -> Conv1d -> bidirectional LSTM -> GRU -> RNN -> Linear, submodules named as the
    seqfuse layers (their state_dict keys are the ones torch_state_dict makes)."""

    def __init__(self, bias=True):
        super().__init__()
        self.words = torch.nn.Embedding(20, 4)
        self.conv = torch.nn.Conv1d(4, 6, 3, bias=bias)
        self.both = torch.nn.LSTM(6, 3, batch_first=True, bidirectional=True, bias=bias)
        self.gru = torch.nn.GRU(6, 5, batch_first=True, bias=bias)
        self.rnn = torch.nn.RNN(5, 3, batch_first=True, bias=bias)
        self.out = torch.nn.Linear(3, 2, bias=bias)

    def forward(self, ids):
        h = self.conv(self.words(ids).transpose(1, 2)).transpose(1, 2)   # Conv1d is channels-first
        h = self.gru(self.both(h)[0])[0]
        return self.out(self.rnn(h)[0][:, -1])


def _ours(bias=True):
    model = en.Sequential([L.Embedding(20, 4, name="words"), L.Conv1D(6, 3, use_bias=bias, name="conv"),
                           L.Bidirectional(L.LSTM(3, return_sequences=True, use_bias=bias), name="both"),
                           L.GRU(5, return_sequences=True, use_bias=bias, name="gru"),
                           L.SimpleRNN(3, use_bias=bias, name="rnn"), L.Dense(2, use_bias=bias, name="out")])
    model.build((None, T))
    return model


def _ids():
    return np.random.default_rng(0).integers(0, 20, size=(5, T))


def _randomize(module):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)      # non-zero biases everywhere, so each bias mapping counts


def _torch_predict(module, ids):
    with torch.no_grad():
        return module(torch.from_numpy(ids)).numpy()


@pytest.mark.parametrize("bias", [True, False])
def test_torch_module_to_seqfuse(bias):
    module = _Torch(bias)
    _randomize(module)
    model = _ours(bias)
    model.load_torch_state_dict(module.state_dict())
    ids = _ids()
    np.testing.assert_allclose(model.predict(ids), _torch_predict(module, ids), atol=ATOL, rtol=0)


@pytest.mark.parametrize("bias", [True, False])
def test_seqfuse_to_torch_module(bias):
    model = _ours(bias)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    module = _Torch(bias)
    state = model.torch_state_dict()
    assert list(state) == list(module.state_dict())       # the same keys, in module order
    module.load_state_dict(state)
    ids = _ids()
    np.testing.assert_allclose(_torch_predict(module, ids), model.predict(ids), atol=ATOL, rtol=0)


def test_export_puts_the_bias_in_b_ih_and_reorders_gru_gates():
    model = _ours()
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    state = {k: v.numpy() for k, v in model.torch_state_dict().items()}
    np.testing.assert_array_equal(state["both.bias_ih_l0"], model.layers[2].forward_layer.bias.numpy())
    np.testing.assert_array_equal(state["both.bias_hh_l0"], np.zeros(12, "float32"))
    kernel, recurrent_kernel, bias = model.layers[3].get_weights()
    H = 5   # Keras z,r,h -> torch r,z,n: the first two gate blocks swap
    np.testing.assert_array_equal(state["gru.weight_ih_l0"][:H], kernel[:, H:2 * H].T)
    np.testing.assert_array_equal(state["gru.weight_hh_l0"][H:2 * H], recurrent_kernel[:, :H].T)
    np.testing.assert_array_equal(state["gru.bias_hh_l0"][2 * H:], bias[1, 2 * H:])
    # each per-op pair is a round trip on Keras weights
    for op, weights in (("gru", model.layers[3].get_weights()), ("simple_rnn", model.layers[4].get_weights()),
                        ("lstm", model.layers[2].forward_layer.get_weights())):
        back = getattr(convert, f"{op}_from_torch")(getattr(convert, f"{op}_to_torch")(weights))
        for a, b in zip(back, weights):
            np.testing.assert_array_equal(a, b)
    for op, weights in (("dense", model.layers[5].get_weights()), ("conv1d", model.layers[1].get_weights()),
                        ("embedding", model.layers[0].get_weights())):
        back = getattr(convert, f"{op}_from_torch")(getattr(convert, f"{op}_to_torch")(weights))
        for a, b in zip(back, weights):
            np.testing.assert_array_equal(a, b)


def test_conv1d_kernel_layout_matches_torch():
    conv = torch.nn.Conv1d(3, 4, 2, dilation=2)
    _randomize(conv)
    model = en.Sequential([L.Conv1D(4, 2, dilation_rate=2, name="conv")])
    model.build((None, 8, 3))
    model.load_torch_state_dict({f"conv.{k}": v for k, v in conv.state_dict().items()})
    x = np.random.default_rng(3).normal(size=(2, 8, 3)).astype("float32")
    with torch.no_grad():
        expected = conv(torch.from_numpy(x).transpose(1, 2)).transpose(1, 2).numpy()
    np.testing.assert_allclose(model.predict(x), expected, atol=ATOL, rtol=0)


def test_bad_state_dicts_are_named_and_change_nothing():
    model = _ours()
    before = model.get_weights()
    state = _Torch().state_dict()
    with pytest.raises(KeyError, match=r"missing keys \['out.bias'\], unexpected keys \['extra.weight'\]"):
        model.load_torch_state_dict({**{k: v for k, v in state.items() if k != "out.bias"},
                                     "extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"layer 'out': out/kernel would get shape \(3, 7\) .*expected \(3, 2\)"):
        model.load_torch_state_dict({**state, "out.weight": torch.zeros(7, 3)})
    with pytest.raises(ValueError, match=r"layer 'gru': convert: gru expects weight_ih"):
        model.load_torch_state_dict({**state, "gru.weight_ih_l0": torch.zeros(14, 6)})
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_layers_without_a_torch_counterpart_are_named():
    model = en.Sequential([L.GRU(3, reset_after=False, name="old_gru")])
    model.build((None, 4, 2))
    with pytest.raises(ValueError, match="'old_gru' is a reset_after=False GRU"):
        model.torch_state_dict()
    with pytest.raises(ValueError, match="'old_gru' is a reset_after=False GRU"):
        model.load_torch_state_dict({})

    class Scale(L.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight("scale", (input_shape[-1],), "ones")

        def call(self, x, mask=None, training=False):
            return x * self.scale
    model = en.Sequential([Scale(name="scale")])
    model.build((None, 3))
    with pytest.raises(ValueError, match=r"layer 'scale' \(Scale\) has weights but no PyTorch counterpart"):
        model.torch_state_dict()


class _Seq2Seq(torch.nn.Module):
    """Encoder LSTM whose final (h, c) start a decoder LSTM; a Linear on every decoder step."""

    def __init__(self):
        super().__init__()
        self.source_words = torch.nn.Embedding(20, 4)
        self.target_words = torch.nn.Embedding(20, 4)
        self.encoder = torch.nn.LSTM(4, 6, batch_first=True)
        self.decoder = torch.nn.LSTM(4, 6, batch_first=True)
        self.step = torch.nn.Linear(6, 20)

    def forward(self, source, target):
        _, state = self.encoder(self.source_words(source))
        decoded, _ = self.decoder(self.target_words(target), state)
        return self.step(decoded)


def _seq2seq():
    source, target = en.Input((T,), dtype="int64"), en.Input((T - 2,), dtype="int64")
    _, h, c = L.LSTM(6, return_state=True, name="encoder")(L.Embedding(20, 4, name="source_words")(source))
    decoded = L.LSTM(6, return_sequences=True, name="decoder")(
        L.Embedding(20, 4, name="target_words")(target), initial_state=[h, c])
    return en.Model([source, target], L.TimeDistributed(L.Dense(20), name="step")(decoded))


def test_functional_encoder_decoder_both_ways():
    rng = np.random.default_rng(4)
    ids = [rng.integers(0, 20, size=(3, T)), rng.integers(0, 20, size=(3, T - 2))]
    module, model = _Seq2Seq(), _seq2seq()
    _randomize(module)
    model.load_torch_state_dict(module.state_dict())
    with torch.no_grad():
        expected = module(*[torch.from_numpy(a) for a in ids]).numpy()
    np.testing.assert_allclose(model.predict(ids), expected, atol=ATOL, rtol=0)

    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    module = _Seq2Seq()
    module.load_state_dict(model.torch_state_dict())
    with torch.no_grad():
        expected = module(*[torch.from_numpy(a) for a in ids]).numpy()
    np.testing.assert_allclose(expected, model.predict(ids), atol=ATOL, rtol=0)


def test_shared_layers_appear_once_and_nested_models_nest_their_keys():
    inner_in = en.Input((T, 3))
    inner = en.Model(inner_in, L.GRU(2, name="gru")(inner_in), name="inner")
    a, b = en.Input((T, 3)), en.Input((T, 3))
    shared = L.Dense(2, name="shared")
    model = en.Model([a, b], L.Add()([shared(inner(a)), shared(inner(b))]))
    state = model.torch_state_dict()
    assert list(state) == ["inner.gru.weight_ih_l0", "inner.gru.weight_hh_l0", "inner.gru.bias_ih_l0",
                           "inner.gru.bias_hh_l0", "shared.weight", "shared.bias"]
    x = [np.random.default_rng(5).normal(size=(2, T, 3)).astype("float32") for _ in range(2)]
    before = model.predict(x)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    model.load_torch_state_dict(state)
    np.testing.assert_array_equal(model.predict(x), before)
