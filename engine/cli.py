"""The `seqfuse` command (also `python -m engine`).

    seqfuse train --data movie_reviews --model lstm --epochs 3   # the main job, on bundled data
    seqfuse train --device cuda                                   # the same on an NVIDIA GPU
    seqfuse train --data jfk_weather --model gru --plot curves.png  # 24 h temperature forecast
    seqfuse train --data pride_and_prejudice --save char.npz      # character language model
    seqfuse generate char.npz --seed-text "It is a truth"         # sample text from it
    seqfuse train --data translation --save fr.npz                # English -> French
    seqfuse translate fr.npz "I'm hungry."                        # with that saved model
    seqfuse info                                                  # backends here, and why not
    seqfuse parity                                                # every backend vs the reference
    seqfuse parity --device cuda                                  # the GPU vs the CPU reference
    seqfuse bench                                                 # our kernels beside PyTorch, vs the sgemm peak
    seqfuse bench --device cuda                                   # ... beside PyTorch+cuDNN
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

from . import distributed, tasks

# What train's options are when neither the command line nor the task's DEFAULTS set them.
_TRAIN_DEFAULTS = {"epochs": 3, "batch_size": 64, "units": 32, "max_tokens": 10000, "sequence_length": 40}


def _train(args):
    import engine as en
    # Under `mpiexec -n N seqfuse train` every process trains its share of each batch (fit is
    # data-parallel); rank 0 alone prints the report and writes files.
    with _stdout_on_main_only():
        en.set_random_seed(args.seed)
        if args.backend:
            en.set_backend(args.backend)
        if args.tf32 and args.device != "cuda":
            raise ValueError("--tf32 needs --device cuda (TF32 is a GPU matmul mode)")
        en.device.require(args.device, "--device")   # before any data is loaded
        en.device.allow_tf32(args.tf32)
        n = distributed.size()
        processes = f"; data-parallel over {n} MPI processes" if n > 1 else ""
        on = f"device: cuda{' (TF32 on)' if args.tf32 else ''}; " if args.device == "cuda" else ""
        print(f"{on}backend: {en.get_backend()} (available: {', '.join(en.backends.available())}){processes}")
        start = time.perf_counter()
        task = tasks.get(args.data)
        args.model = args.model or task.MODELS[0]
        if args.model not in task.MODELS:
            raise ValueError(f"--model for {args.data} must be one of {', '.join(task.MODELS)}, "
                             f"got {args.model}")
        for name, value in {**_TRAIN_DEFAULTS, **getattr(task, "DEFAULTS", {})}.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        if not distributed.is_main():  # rank 0 alone writes the files (the tasks write some)
            args.plot = args.save = args.history = None
        with en.device.default_device_scope(args.device):   # the task's model is built there
            model, history, results = task.run(args, en)
        print(f"trained in {time.perf_counter() - start:.1f}s")
        if args.save:
            model.save(args.save)
            print(f"saved model to {args.save}")
        if args.history:
            with open(args.history, "w") as f:
                json.dump({"history": history.history, **results}, f, indent=1)
    return 0


@contextlib.contextmanager
def _stdout_on_main_only():
    if distributed.is_main():
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def _generate(args):
    import engine as en
    from .tasks import pride_and_prejudice
    return pride_and_prejudice.generate(args, en)


def _translate(args):
    from .translation import main
    return main(args)


def _info(args):
    import engine as en
    print(f"seqfuse {en.__version__}; default CPU backend: {en.get_backend()}")
    for name in en.backends.names():
        module = en.backends._discover()[name]
        status = "available" if module.available() else f"unavailable: {module.why_unavailable()}"
        print(f"  {name:<10} {module.DEVICE:<5} {status}")
    if en.backends.get("cpp").available():
        from . import _cpu, tuning
        chosen = ", ".join(f"{k}={v}" for k, v in tuning.current().items())
        print(f"kernel choices on this CPU ({_cpu.info()['model']}): {chosen}")
    return 0


def _parity(args):
    from .parity import main
    return main(args)


def _bench(args):
    if args.device == "cuda":
        from .benchmark_cuda import main
    else:
        from .benchmark import main
    return main(args)


def _verbose(text):
    if text == "auto":
        return text
    if text not in ("0", "1", "2"):
        raise argparse.ArgumentTypeError(f"expected 0, 1, 2 or auto, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqfuse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model on a bundled data set")
    train.add_argument("--data", choices=tasks.names(), default="movie_reviews")
    train.add_argument("--model", choices=tasks.model_choices(), help="default: the task's first choice")
    train.add_argument("--epochs", type=int, help="default 3 (pride_and_prejudice: 6, translation: 10)")
    train.add_argument("--batch-size", type=int, help="default 64 (pride_and_prejudice: 128)")
    train.add_argument("--units", type=int, help="default 32 (pride_and_prejudice, translation: 128)")
    train.add_argument("--max-tokens", type=int, help="vocabulary size, default 10000 (translation: 3000)")
    train.add_argument("--sequence-length", type=int,
                       help="tokens per review (movie_reviews, default 40); hours/3 of lookback "
                            "(jfk_weather, 40); characters per window (pride_and_prejudice, 60); "
                            "tokens per sentence (translation, 20)")
    train.add_argument("--step", type=int, default=3,
                       help="characters between window starts (pride_and_prejudice)")
    train.add_argument("--max-chars", type=int,
                       help="use only the first N characters of the text (pride_and_prejudice)")
    train.add_argument("--backend", help="reference, numba, cpp (default: fastest available)")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="train on the CPU (default) or an NVIDIA GPU (needs seqfuse[gpu])")
    train.add_argument("--tf32", action="store_true",
                       help="with --device cuda: float32 GEMMs on TF32 tensor cores (faster, ~1e-3 "
                            "relative error; off by default for CPU parity)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--save", help="write the trained model here (.npz, or .keras for a Keras 3 archive; "
                       "translation also writes its vocabularies beside it, MODEL.vocab.json)")
    train.add_argument("--history", help="write per-epoch history and test results here (JSON)")
    train.add_argument("--plot", help="draw the training curves here (PNG; needs matplotlib); "
                                      "jfk_weather also writes <stem>_forecast.png")
    train.add_argument("--verbose", type=_verbose, default="auto",
                       help="0 silent, 1 progress bar (default), 2 one line per epoch")
    train.set_defaults(run=_train)
    generate = sub.add_parser("generate", help="sample text from a character model saved by "
                                               "`train --data pride_and_prejudice --save MODEL`")
    generate.add_argument("model", help="the saved model; its vocabulary is MODEL with the suffix "
                                        ".vocab.json (char.npz -> char.vocab.json)")
    generate.add_argument("--seed-text", default="It is a truth universally acknowledged, that a single man",
                          help="the text the sample continues")
    generate.add_argument("--length", type=int, default=400, help="characters to generate")
    generate.add_argument("--temperature", type=float, nargs="+", default=[0.2, 0.5, 1.0],
                          help="one sample per temperature (0 = always the likeliest character)")
    generate.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    generate.set_defaults(run=_generate)
    translate = sub.add_parser("translate", help="English -> French with a model saved by "
                               "`train --data translation --save MODEL`")
    translate.add_argument("model", help="the saved model; its vocabularies are MODEL with the suffix "
                           ".vocab.json (fr.npz -> fr.vocab.json)")
    translate.add_argument("sentences", nargs="+", help="English sentences, one translation printed per line")
    translate.add_argument("--max-length", type=int, help="most tokens per translation (default: the "
                           "longest training target)")
    translate.set_defaults(run=_translate)
    sub.add_parser("info", help="list backends").set_defaults(run=_info)
    parity = sub.add_parser("parity", help="every backend against the reference, per op and gradient")
    parity.add_argument("--seed", type=int, default=0)
    parity.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: every CPU backend; cuda: the cupy backend on the GPU, every option, "
                             "each recurrent kernel version")
    parity.add_argument("--json", metavar="PATH", help="also write the rows here (JSON)")
    parity.set_defaults(run=_parity)
    bench = sub.add_parser("bench", help="time our kernels beside PyTorch (CPU, or cuDNN with --device cuda), "
                                         "with GFLOP/s and % of this machine's measured sgemm peak")
    bench.add_argument("--ops", help="comma-separated (default: every op of the device's list: "
                                     "lstm,gru,simple_rnn,conv1d,embedding; cuda: lstm,gru,conv1d,embedding)")
    bench.add_argument("--repeat", type=int, default=5)
    bench.add_argument("--quick", action="store_true", help="smallest size of each op only")
    bench.add_argument("--backends", help="comma-separated (default: every available CPU backend)")
    bench.add_argument("--markdown", action="store_true", help="print a Markdown table")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="cuda: our CUDA kernels beside PyTorch+cuDNN on the same card, with the "
                            "card's measured GEMM and bandwidth ceilings")
    bench.add_argument("--json", metavar="PATH", nargs="?", const="-",
                       help="the report (machine, ceilings, rows) as JSON, on stdout with the table on "
                            "stderr (no PATH) or into PATH, rewritten after each group so a cut-short "
                            "run keeps its rows")
    bench.add_argument("--max-seconds", type=float,
                       help="cuda: start no new group of rows after this long (the rest are listed as skipped)")
    bench.set_defaults(run=_bench)
    return parser


def main(argv=None) -> int:
    from .device import DeviceUnavailableError
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except MemoryError as exc:   # CuPy's OutOfMemoryError says how many bytes were asked for
        print(f"seqfuse {args.command}: out of memory: {exc}", file=sys.stderr)
        if distributed.size() > 1:
            distributed.abort(1)
        return 1
    except (ValueError, TypeError, IndexError, FileNotFoundError, DeviceUnavailableError) as exc:
        print(f"seqfuse {args.command}: {exc}", file=sys.stderr)
        if distributed.size() > 1:
            distributed.abort(2)  # a process that returned alone would leave the others waiting
        return 2
