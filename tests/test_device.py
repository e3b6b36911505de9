"""Devices without a GPU: the clear errors where CUDA is missing, the cpu round trip, the
mixed-device check, the TF32 switch and the fused GPU update kernels' host side (their
sources compile with NVRTC; every optimizer names a kernel that takes its slots).
tests/test_gpu_training.py runs the same paths on a device."""
import numpy as np
import pytest

import engine as en
from engine import _gpu_updates, tasks
from engine.cli import main
from engine.function import common_device

no_gpu = pytest.mark.skipif(en.device.is_available("cuda"), reason="a CUDA device is present")


class _StubDeviceArray(np.ndarray):
    """A NumPy array whose type claims to be CuPy's: what the device check looks at."""


_StubDeviceArray.__module__ = "cupy._stub"


def _on_stub_device(array):
    return np.asarray(array).view(_StubDeviceArray)


@no_gpu
def test_moving_to_cuda_without_a_device_names_the_reason():
    reason = en.backends.why_unavailable()["cupy"]
    assert reason and en.device.why_unavailable("cuda") == reason
    model = en.Sequential([en.layers.Dense(2)])
    layer = en.layers.LSTM(3)
    x = en.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    for what, move in (("sequential", model.to), (layer.name, layer.to), ("Tensor.to", x.to)):
        with pytest.raises(en.device.DeviceUnavailableError, match="device 'cuda' is not available") as info:
            move("cuda")
        assert what in str(info.value) and reason in str(info.value)
    with pytest.raises(en.device.DeviceUnavailableError, match="set_default_device"):
        en.device.set_default_device("cuda")
    assert en.device.default_device() == "cpu"


@no_gpu
def test_train_on_cuda_without_a_device_exits_2_with_the_reason(capsys):
    assert main(["train", "--device", "cuda", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--device: device 'cuda' is not available here" in err
    assert en.backends.why_unavailable()["cupy"] in err


def test_tf32_needs_the_gpu_and_is_off_by_default(capsys):
    assert not en.device.tf32_allowed()
    assert main(["train", "--tf32", "--epochs", "1"]) == 2
    assert "--tf32 needs --device cuda" in capsys.readouterr().err


def test_unknown_device_names_are_rejected():
    x = en.Tensor(np.ones(2))
    with pytest.raises(ValueError, match="Tensor.to: device must be 'cpu' or 'cuda', got 'gpu'"):
        x.to("gpu")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'cuda:0'"):
        en.layers.Dense(2).to("cuda:0")
    with pytest.raises(SystemExit):
        main(["train", "--device", "tpu"])


def test_out_of_memory_is_printed_with_its_size(monkeypatch, capsys):
    def run(args, en):
        raise MemoryError("Out of memory allocating 4,398,046,511,104 bytes (allocated so far: 0 bytes).")
    monkeypatch.setattr(tasks.get("movie_reviews"), "run", run)
    assert main(["train", "--epochs", "1"]) == 1
    assert "out of memory: Out of memory allocating 4,398,046,511,104 bytes" in capsys.readouterr().err


def test_to_cpu_keeps_objects_dtype_and_grads():
    x = en.Tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    (x * x).sum().backward()
    assert x.to("cpu") is x and x.to("cpu").grad is x.grad  # nothing moves: itself, as torch
    en.set_random_seed(0)
    model = en.Sequential([en.layers.Dense(4, activation="tanh"), en.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    data = np.random.default_rng(0).random((16, 3), dtype=np.float32), np.zeros((16, 1), np.float32)
    model.fit(*data, epochs=1, verbose=0)
    weights = model.weights
    assert model.to("cpu") is model and model.device == "cpu"
    assert all(a is b for a, b in zip(model.weights, weights))   # the optimizer's references hold
    assert all(w.dtype == np.float32 for w in model.weights)
    model.fit(*data, epochs=1, verbose=0)


def test_common_device_names_the_op_and_both_devices():
    cpu = en.Tensor(np.ones(3, np.float32))
    gpu = en.Tensor(_on_stub_device(np.ones(3, np.float32)))
    assert gpu.device == "cuda" and cpu.device == "cpu"
    assert common_device("Add", (cpu, cpu, None, np.ones(2)), en.Tensor) == "cpu"
    assert common_device("Add", (gpu, 3, gpu), en.Tensor) == "cuda"
    assert common_device("Where", (np.ones(2), 1.0), en.Tensor) is None
    with pytest.raises(ValueError, match=r"MatMul: expected all tensors on one device, got input 0 on "
                                         r"cpu and input 1 on cuda"):
        common_device("MatMul", (cpu, gpu), en.Tensor)
    # Function.apply runs the check before any array work (or any cupy import).
    with pytest.raises(ValueError, match="Add: .* input 0 on cuda and input 1 on cpu"):
        gpu + cpu
    with pytest.raises(ValueError, match="Conv1D: .* input 0 on cpu and input 1 on cuda"):
        en.functional.conv1d(en.Tensor(np.ones((1, 4, 2), np.float32)),
                             en.Tensor(_on_stub_device(np.ones((2, 2, 3), np.float32))))


@pytest.mark.parametrize("name", _gpu_updates.names())
def test_fused_update_sources_compile_with_nvrtc(name):
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    try:
        program = nvrtc.createProgram(_gpu_updates.standalone_source(name), f"{name}.cu", [], [])
    except Exception as exc:  # the NVRTC library itself is missing
        pytest.skip(f"NVRTC unavailable: {exc}")
    try:
        for t in ("float", "double"):
            nvrtc.addNameExpression(program, f"seqfuse_{name}_update<{t}>")
        try:
            nvrtc.compileProgram(program, ["--std=c++17", "--fmad=false", "-arch=compute_80"])
        except nvrtc.NVRTCError:
            pytest.fail(f"{name} update does not compile:\n{nvrtc.getProgramLog(program)}")
    finally:
        nvrtc.destroyProgram(program)


OPTIMIZERS = [
    en.optimizers.SGD(), en.optimizers.SGD(momentum=0.9), en.optimizers.SGD(momentum=0.9, nesterov=True),
    en.optimizers.RMSprop(), en.optimizers.RMSprop(momentum=0.5), en.optimizers.RMSprop(centered=True),
    en.optimizers.RMSprop(centered=True, momentum=0.5), en.optimizers.Adam(),
    en.optimizers.Adam(amsgrad=True), en.optimizers.AdamW(),
]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: f"{type(o).__name__}:{o._slot_groups}")
def test_every_optimizer_names_a_fused_kernel_taking_its_slots(optimizer):
    name, scalars, slots = optimizer._gpu_kernel(0.01, 1)
    in_params, out_params, _ = _gpu_updates.source(name)
    assert sorted(slots) == sorted(n for group in optimizer._slot_groups for n in group)
    assert out_params.split(", ")[-1] == "T p" and len(out_params.split(", ")) == len(slots) + 1
    assert len(in_params.split(", ")) == 3 + len(scalars)   # g, decay, ok, then the scalars


@pytest.fixture(scope="module")
def host_updates(tmp_path_factory):
    """The fused update kernels built as host C++ (same bodies, a plain loop), via ctypes."""
    import ctypes
    import shutil
    import subprocess
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    folder = tmp_path_factory.mktemp("updates")
    source = folder / "updates.cpp"
    source.write_text("".join(_gpu_updates.standalone_source(n, host=True) for n in _gpu_updates.names()))
    # No FMA contraction: the GPU kernels are compiled with --fmad=false, NumPy never fuses.
    subprocess.run([compiler, "-O2", "-ffp-contract=off", "-shared", "-fPIC", str(source),
                    "-o", str(folder / "updates.so")], check=True)
    return ctypes.CDLL(str(folder / "updates.so"))


def _call_host_update(library, name, args):
    import ctypes
    c_args = []
    for a in args:
        if isinstance(a, np.ndarray):
            c_args.append(a.ctypes.data_as(ctypes.c_void_p))
        else:
            c_args.append(ctypes.c_double(a) if a.dtype == np.float64 else ctypes.c_float(a))
    fn = getattr(library, f"{name}_{'double' if args[-1].dtype == np.float64 else 'float'}")
    fn(*c_args, ctypes.c_longlong(args[-1].size))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: f"{type(o).__name__}:{o._slot_groups}")
def test_fused_update_arithmetic_equals_the_numpy_update(optimizer, dtype, host_updates):
    """The GPU kernels' bodies, run on the host, take the very steps the CPU optimizer takes."""
    import copy
    rng = np.random.default_rng(0)
    start = rng.standard_normal((7, 5)).astype(dtype)
    grads = [rng.standard_normal((7, 5)).astype(dtype) for _ in range(3)]
    cpu, fused = copy.deepcopy(optimizer), copy.deepcopy(optimizer)
    p = en.Tensor(start.copy(), requires_grad=True)
    for g in grads:
        cpu.apply_gradients([(g, p)])
    param = start.copy()
    slots = {n: np.zeros_like(param) for group in fused._slot_groups for n in group}
    for i, g in enumerate(grads):
        lr = fused.current_learning_rate()
        name, scalars, slot_names = fused._gpu_kernel(lr, i + 1)
        decay = fused.weight_decay * lr if fused.weight_decay else 0.0
        ok = np.ones((), bool) if i != 1 else np.zeros((), bool)
        _call_host_update(host_updates, name, _gpu_updates.arguments(
            name, param, g, decay, ok, scalars, tuple(slots[n] for n in slot_names)))
        if i == 1:   # ok false: nothing written; then redo the step as the CPU took it
            _call_host_update(host_updates, name, _gpu_updates.arguments(
                name, param, g, decay, np.ones((), bool), scalars, tuple(slots[n] for n in slot_names)))
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(param, p.data, rtol=rtol, atol=rtol)
    for n, slot in slots.items():
        np.testing.assert_allclose(slot, cpu._slots[id(p)][n], rtol=rtol, atol=rtol, err_msg=n)
