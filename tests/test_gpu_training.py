"""Whole models trained on the GPU: same losses as on the CPU, the fused optimizer updates
equal the CPU's, no host round trip inside a training step, and the errors a GPU user meets
(mixed devices, out of memory). Small shapes: the whole file runs in seconds on an H100/H200."""
import re
import time
import warnings

import numpy as np
import pytest

import engine as en
import engine.functional as F
from engine.cli import main
from engine.sparse import RowSparse

pytestmark = pytest.mark.gpu

if "cupy" not in en.backends.available():
    pytest.skip(f"no GPU backend: {en.backends.why_unavailable().get('cupy', 'unknown')}",
                allow_module_level=True)

cupy = pytest.importorskip("cupy")

RTOL = 1e-4   # float32 training, CPU kernels vs GPU kernels, after two epochs


def _text_data(n=96, T=12, vocabulary=40):
    rng = np.random.default_rng(1)
    ids = rng.integers(1, vocabulary, (n, T))
    lengths = rng.integers(3, T + 1, n)
    ids[np.arange(T)[None, :] >= lengths[:, None]] = 0          # right padding, masked
    return ids, (ids[:, 0] % 2).astype(np.float32)


def _text_model(L):
    return [L.Embedding(40, 8, mask_zero=True), L.LSTM(16, recurrent_dropout=0.1),
            L.Dropout(0.2), L.Dense(8, activation="relu"), L.Dense(1, activation="sigmoid")]


def _conv_data(n=80, T=20, C=3):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, T, C)).astype(np.float32)
    return x, rng.integers(0, 4, n)


def _conv_model(L):
    return [L.Conv1D(8, 3, padding="causal", activation="relu"), L.MaxPooling1D(2),
            L.Conv1D(8, 3, activation="relu"), L.GlobalMaxPooling1D(), L.Dense(4, activation="softmax")]


def _merge_data():
    (a, y), (b, _) = _text_data(), _text_data(T=9)
    return [a[:, :9], b], y


def _merge_model(L):
    """Functional: two padded token inputs, embedded with mask_zero and added (their masks are
    and-ed by Add.compute_mask on the device), then an LSTM."""
    a, b = en.Input((9,), dtype="int64"), en.Input((9,), dtype="int64")
    merged = L.Add()([L.Embedding(40, 8, mask_zero=True)(a), L.Embedding(40, 8, mask_zero=True)(b)])
    return en.Model([a, b], L.Dense(1, activation="sigmoid")(L.LSTM(12)(merged)))


def _train(make, data, device, optimizer, loss, metrics):
    en.set_random_seed(0)   # same initial weights, shuffles and dropout masks on both devices
    built = make(en.layers)
    model = en.Sequential(built) if isinstance(built, list) else built
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    if device == "cuda":
        model.to("cuda")    # before the first call: the weights are built on the GPU
    history = model.fit(*data, batch_size=32, epochs=2, verbose=0, validation_split=0.25)
    return model, history.history


@pytest.mark.parametrize("case", ["lstm_text", "conv1d", "functional_merge"])
def test_model_trained_on_gpu_reaches_the_cpu_losses(case):
    make, data, loss, optimizer = {
        "lstm_text": (_text_model, _text_data(), "binary_crossentropy", "rmsprop"),
        "conv1d": (_conv_model, _conv_data(), "sparse_categorical_crossentropy", "adam"),
        "functional_merge": (_merge_model, _merge_data(), "binary_crossentropy", "adam"),
    }[case]
    cpu_model, cpu = _train(make, data, "cpu", optimizer, loss, ["acc"])
    gpu_model, gpu = _train(make, data, "cuda", optimizer, loss, ["acc"])
    assert all(w.device == "cuda" for w in gpu_model.weights)
    assert set(gpu) == set(cpu)
    for key in cpu:
        # Accuracies count thresholded predictions: one sample may flip on a 1e-6 difference.
        rtol, atol = (RTOL, 1e-6) if key.endswith("loss") else (0, 1.5 / len(data[1]))
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=rtol, atol=atol,
                                   err_msg=f"{case}: history[{key!r}] on the GPU vs the CPU")
    x = [a[:10] for a in data[0]] if isinstance(data[0], list) else data[0][:10]
    predicted = gpu_model.predict(x, verbose=0)
    assert isinstance(predicted, np.ndarray)   # predict returns NumPy, as Keras
    np.testing.assert_allclose(predicted, cpu_model.predict(x, verbose=0), rtol=1e-3, atol=1e-5,
                               err_msg=f"{case}: predictions")
    result = gpu_model.evaluate(*data, verbose=0)
    assert isinstance(result[0], float)


def test_model_moved_after_training_on_the_cpu_keeps_its_optimizer_state():
    x, y = _conv_data()
    en.set_random_seed(0)
    model = en.Sequential(_conv_model(en.layers))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    weights = model.weights
    assert model.to("cuda") is model
    assert all(a is b and a.device == "cuda" for a, b in zip(model.weights, weights))
    slots = [s for p in weights for s in model.optimizer._slots[id(p)].values()]
    assert slots and all(isinstance(s, cupy.ndarray) for s in slots)
    logs = model.train_on_batch(x[:16], y[:16])
    assert isinstance(logs["loss"], float) and np.isfinite(logs["loss"])
    model.to("cpu")
    assert all(w.device == "cpu" for w in model.weights)
    model.fit(x, y, epochs=1, verbose=0)


OPTIMIZERS = {
    "sgd": lambda: en.optimizers.SGD(0.1),
    "sgd_momentum": lambda: en.optimizers.SGD(0.1, momentum=0.9),
    "sgd_nesterov": lambda: en.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: en.optimizers.RMSprop(0.01),
    "rmsprop_momentum": lambda: en.optimizers.RMSprop(0.01, momentum=0.5),
    "rmsprop_centered": lambda: en.optimizers.RMSprop(0.01, centered=True),
    "rmsprop_centered_momentum": lambda: en.optimizers.RMSprop(0.01, centered=True, momentum=0.5),
    "adam": lambda: en.optimizers.Adam(0.01),
    "adam_amsgrad": lambda: en.optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: en.optimizers.AdamW(0.01),
    "adam_clipnorm": lambda: en.optimizers.Adam(0.01, clipnorm=0.5),
    "sgd_global_clipnorm": lambda: en.optimizers.SGD(0.1, momentum=0.9, global_clipnorm=0.5),
    "rmsprop_clipvalue": lambda: en.optimizers.RMSprop(0.01, clipvalue=0.05),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "row_sparse"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fused_update_equals_the_cpu_update(name, sparse, dtype):
    rng = np.random.default_rng(3)
    start = rng.standard_normal((12, 5)).astype(dtype)
    grads = [rng.standard_normal((12, 5)).astype(dtype) for _ in range(3)]
    rows = [np.array([3, 0, 3, 7]), np.array([1, 2]), np.array([7, 7, 11])]
    results = {}
    for device in ("cpu", "cuda"):
        p = en.Tensor(start.copy(), requires_grad=True).to(device)
        optimizer = OPTIMIZERS[name]()
        for step, g in enumerate(grads):
            if sparse:
                ids = en.device.to_device(rows[step], device)
                values = en.device.to_device(g[:len(rows[step])], device)
                grad = RowSparse(ids, values, p.shape)
            else:
                grad = en.device.to_device(g, device)
            optimizer.apply_gradients([(grad, p)])
        results[device] = (p.numpy(), [en.device.to_device(s, "cpu") for s in optimizer._slot_arrays()])
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=rtol, atol=rtol,
                               err_msg=f"{name} ({'sparse' if sparse else 'dense'}, {np.dtype(dtype)}): parameter")
    for i, (gpu_slot, cpu_slot) in enumerate(zip(results["cuda"][1], results["cpu"][1])):
        np.testing.assert_allclose(gpu_slot, cpu_slot, rtol=rtol, atol=rtol,
                                   err_msg=f"{name} ({'sparse' if sparse else 'dense'}, "
                                           f"{np.dtype(dtype)}): slot {i}")


def test_nonfinite_loss_skips_the_update_on_the_device():
    x, y = _conv_data(n=16)
    en.set_random_seed(0)
    model = en.Sequential(_conv_model(en.layers)).to("cuda")
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(x, np.eye(4, dtype=np.float32)[y])
    before = model.get_weights()
    logs = model.train_on_batch(x, np.full((16, 4), np.nan, np.float32))
    assert np.isnan(logs["loss"])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b, err_msg="a NaN loss must leave the weights as they were")


_SPIN = r'''
extern "C" __global__ void seqfuse_spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) { }
}
'''


def _occupy_device(seconds):
    """Queue a kernel that keeps the stream busy for `seconds`: any host read after it waits."""
    khz = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["clockRate"]
    cupy.RawKernel(_SPIN, "seqfuse_spin")((1,), (1,), (np.int64(khz * 1000 * seconds),))


@pytest.mark.parametrize("case", ["lstm_dense", "conv1d"])
def test_training_step_makes_no_host_round_trip(case, monkeypatch):
    """Transfer guard: with the stream held busy by a 2 s kernel, three training steps must
    return to the host long before it ends (any device->host read or sync would wait), and
    must call neither cupy.asnumpy nor Tensor.numpy/item. Float inputs: the Embedding id check
    (the cupy backend's, for ids on the device) reads one flag per step by design."""
    if case == "lstm_dense":
        rng = np.random.default_rng(4)
        x, y = rng.standard_normal((32, 10, 6)).astype(np.float32), rng.integers(0, 2, 32).astype(np.float32)
        layers = [en.layers.LSTM(16), en.layers.Dropout(0.2), en.layers.Dense(1, activation="sigmoid")]
        loss = "binary_crossentropy"
    else:
        (x, y), layers, loss = _conv_data(n=32), _conv_model(en.layers), "sparse_categorical_crossentropy"
    en.set_random_seed(0)
    model = en.Sequential(layers).to("cuda")
    model.compile(optimizer=en.optimizers.Adam(clipnorm=1.0), loss=loss, metrics=["acc"])
    model._train_step(x, y)                 # compiles the kernels, fills the memory pools
    cupy.cuda.Stream.null.synchronize()
    reads = []
    monkeypatch.setattr(cupy, "asnumpy", lambda *a, **k: reads.append("cupy.asnumpy"))
    monkeypatch.setattr(en.Tensor, "numpy", lambda self: reads.append("Tensor.numpy"))
    monkeypatch.setattr(en.Tensor, "item", lambda self: reads.append("Tensor.item"))
    _occupy_device(2.0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # CuPy 14 warns (a UserWarning) that allow_synchronize will be removed; it still works.
        warnings.filterwarnings("ignore", "cupyx.allow_synchronize will be removed")
        import cupyx
        with cupyx.allow_synchronize(False):                  # names the line that syncs, if any
            for _ in range(3):
                model._train_step(x, y)
    elapsed = time.perf_counter() - start
    assert reads == [], f"{case}: the training step read arrays back to the host: {reads}"
    assert elapsed < 1.0, (f"{case}: three training steps took {elapsed:.2f}s while the device was "
                           "busy for 2 s: something in the step waited for the device (a host read)")
    cupy.cuda.Stream.null.synchronize()


def test_mixed_devices_raise_naming_both():
    cpu = en.Tensor(np.ones((2, 3), np.float32))
    gpu = cpu.to("cuda")
    with pytest.raises(ValueError, match="Add: expected all tensors on one device, got input 0 on cpu "
                                         "and input 1 on cuda"):
        cpu + gpu
    with pytest.raises(ValueError, match="MatMul: .* on cuda .* on cpu"):
        gpu @ cpu.T
    layer = en.layers.Dense(2).to("cuda")
    with pytest.raises(ValueError, match="MatMul: .*cpu.*cuda"):
        layer(cpu)      # a CPU Tensor is not moved silently; a NumPy array would be
    assert layer(np.ones((2, 3), np.float32)).device == "cuda"


def test_numpy_masks_and_states_go_to_the_device():
    rng = np.random.default_rng(5)
    x = en.Tensor(rng.standard_normal((2, 4, 3)).astype(np.float32)).to("cuda")
    k, u = rng.standard_normal((3, 8)).astype(np.float32), rng.standard_normal((2, 8)).astype(np.float32)
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    h0 = np.zeros((2, 2), np.float32)
    out, h, c = F.lstm(x, k, u, None, initial_state=[h0, h0], mask=mask)
    assert out.device == h.device == "cuda"
    pooled = F.global_avg_pool1d(out, mask=mask)
    assert pooled.device == "cuda"


def test_tensor_to_keeps_dtype_and_grad():
    x = en.Tensor(np.arange(4, dtype=np.float64), requires_grad=True)
    (x * x).sum().backward()
    y = x.to("cuda")
    assert y.dtype == np.float64 and y.requires_grad and isinstance(y.grad, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(y.grad), x.grad)
    assert y.to("cuda") is y
    back = y.to("cpu")
    assert back.dtype == np.float64 and isinstance(back.grad, np.ndarray)


def test_absurd_allocation_raises_out_of_memory_with_its_size():
    x = en.Tensor(cupy.ones((1, 2**20), np.float32))
    # [2^20, 2^20] float32 = 4 TiB: more than any card has
    with pytest.raises(cupy.cuda.memory.OutOfMemoryError, match="4,398,046,511,104 bytes"):
        x.T @ x


def test_tf32_switch_changes_float32_matmul_precision():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))
    exact = a @ b
    ga, gb = (cupy.asarray(m, np.float32) for m in (a, b))

    def error():
        return float(np.abs(cupy.asnumpy(ga @ gb) - exact).max() / np.abs(exact).max())
    try:
        en.device.allow_tf32(True)
        tf32 = error()
    finally:
        en.device.allow_tf32(False)
    fp32 = error()
    assert fp32 < 1e-5, f"TF32 off: float32 GEMM error {fp32:.1e}"
    assert tf32 > 1e-4, f"TF32 on: GEMM error {tf32:.1e}, no bigger than float32's: the switch did nothing"


def test_cli_trains_the_main_job_on_the_gpu(capsys):
    assert main(["train", "--data", "movie_reviews", "--model", "lstm", "--epochs", "1",
                 "--device", "cuda", "--verbose", "2"]) == 0
    out = capsys.readouterr().out
    assert "device: cuda" in out and "test: loss" in out
    assert en.device.default_device() == "cpu"   # the scope ended with the command


def _bad_inputs():
    """name -> (fn(device), a fragment of the message): calls that must fail alike on both
    devices, checked on the host before any kernel runs."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    k, u = rng.standard_normal((3, 8)).astype(np.float32), rng.standard_normal((2, 8)).astype(np.float32)
    uniform = np.full((2, 3), 1 / 3, np.float32)

    def on(device, a):
        return en.Tensor(a).to(device)
    return {
        "lstm_bad_kernel": (lambda d: F.lstm(on(d, x), on(d, k[:2]), on(d, u), None), "kernel must have shape"),
        "lstm_bad_mask_shape": (lambda d: F.lstm(on(d, x), on(d, k), on(d, u), None, mask=np.ones((2, 4), bool)),
                                "mask must have shape (2, 5)"),
        "lstm_float64_state": (lambda d: F.lstm(on(d, x), on(d, k), on(d, u), None,
                                                initial_state=[np.zeros((2, 2)), np.zeros((2, 2))]),
                               "must have x's dtype float32, got float64"),
        "conv1d_channels": (lambda d: F.conv1d(on(d, x), on(d, np.ones((3, 4, 2), np.float32))),
                            "kernel must have shape (K, 3, O)"),
        "embedding_ids_out_of_range": (lambda d: F.embedding(np.array([[1, 9]]), on(d, np.ones((5, 2), np.float32))),
                                       "ids must be in [0, 5), got 9"),
        "sparse_ce_labels": (lambda d: en.losses.sparse_categorical_crossentropy(np.array([0, 4]), on(d, uniform)),
                             "labels must be in [0, 3), got 0..4"),
        "sparse_ce_device_labels": (lambda d: en.losses.sparse_categorical_crossentropy(
            on(d, np.array([0, 4])), on(d, uniform)), "labels must be in [0, 3), got 0..4"),
        "dense_features": (lambda d: _call_twice(en.layers.Dense(2).to(d), (2, 3), (2, 4)),
                           "input must have 3 features on the last axis, got shape (2, 4)"),
    }


def _call_twice(layer, first, second):
    layer(np.ones(first, np.float32))     # builds for `first`
    return layer(np.ones(second, np.float32))


@pytest.mark.parametrize("name", list(_bad_inputs()))
def test_bad_input_raises_the_cpu_exception_on_the_gpu(name):
    fn, fragment = _bad_inputs()[name]
    errors = {}
    for device in ("cpu", "cuda"):
        with pytest.raises((ValueError, TypeError, IndexError), match=re.escape(fragment)) as info:
            fn(device)
        errors[device] = info.type
    assert errors["cuda"] is errors["cpu"], f"{name}: {errors['cuda'].__name__} on the GPU, {errors['cpu'].__name__} on the CPU"
