"""The one results JSON of bench/gpu_check.sh, and its tables for bench/RESULTS.md.

    python bench/gpu_results.py OUT_DIR [--gpu-csv F] [--train F]   # writes OUT_DIR/results.json
    python bench/gpu_results.py --markdown OUT_DIR/results.json      # Markdown for RESULTS.md

The first form runs on the device at the end of the check and needs only the standard
library (it must work when the build or every other step failed): it folds steps.tsv, the
JUnit report, parity.json, bench.json, nvidia-smi's card line and the main job's histories into
results.json and prints a short summary. Missing or broken inputs become null with the reason.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

TIMED_OUT = (124, 137)  # timeout's exit code, and SIGKILL after --kill-after


def read_steps(path: Path) -> list[dict]:
    """steps.tsv (name, exit code, seconds, limit) -> [{name, exit_code, seconds, limit_s, timed_out}]."""
    steps = []
    for name, code, seconds, limit in csv.reader(path.read_text().splitlines(), delimiter="\t"):
        steps.append({"name": name, "exit_code": int(code), "seconds": float(seconds),
                      "limit_s": int(limit), "timed_out": int(code) in TIMED_OUT})
    return steps


def read_junit(path: Path) -> dict:
    """pytest's JUnit XML -> {tests, failures, errors, skipped, failed: ["file::test: message"]}."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in root.iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            message = (problem.get("message") or "").splitlines()
            failed.append(f"{case.get('classname')}::{case.get('name')}: {message[0] if message else ''}"[:300])
    return {**counts, "failed": failed}


def read_gpu_csv(path: Path) -> dict:
    """nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm -> dict."""
    keys = ("name", "driver", "memory", "sm_clock", "max_sm_clock")
    lines = path.read_text().strip().splitlines()
    if not lines:
        raise ValueError(f"{path} is empty: nvidia-smi wrote no card line")
    line = lines[0]
    return dict(zip(keys, (field.strip() for field in line.split(","))))


def _load(reader, path, problems):
    """reader(path), or None with the reason recorded in problems[path name]."""
    if path is None:
        return None
    try:
        return reader(Path(path))
    except (OSError, ValueError, ET.ParseError, IndexError) as exc:
        problems[Path(path).name] = f"{type(exc).__name__}: {exc}"
        return None


def _json(path):
    return json.loads(path.read_text())


def collect(out: Path, gpu_csv=None, train=None, train_cpu=None) -> dict:
    """Every input of the check folded into one dict (see the module docstring)."""
    problems = {}
    steps = _load(read_steps, out / "steps.tsv", problems) or []
    parity = _load(_json, out / "parity.json", problems)
    bench = _load(_json, out / "bench.json", problems)
    gpu = _load(read_gpu_csv, gpu_csv, problems)
    results = {
        "card": (gpu or {}).get("name") or (bench or {}).get("card"),
        "gpu": gpu,
        "date": (bench or {}).get("date"),
        "passed": bool(steps) and all(s["exit_code"] == 0 for s in steps),
        "steps": steps,
        "tests": _load(read_junit, out / "tests_gpu.xml", problems),
        "parity": None if parity is None else {
            "passed": parity.get("passed"), "rows": parity.get("rows", []),
            "not_ok": [r for r in parity.get("rows", []) if r.get("status") not in ("ok", "n/a")]},
        "bench": bench,
        "train_cuda": _load(_json, train, problems),
        "train_cpu": _load(_json, train_cpu, problems),
        "missing": problems,
    }
    return results


def summary(results) -> list[str]:
    """A few lines for the end of the log and the device tool's output tail."""
    lines = [f"card: {results['card']}; all steps exit 0: {results['passed']}"]
    lines += [f"  {s['name']:<11} exit {s['exit_code']:>3}  {s['seconds']:>6.1f}s / {s['limit_s']}s"
              + ("  TIMED OUT" if s["timed_out"] else "") for s in results["steps"]]
    tests = results["tests"]
    if tests:
        lines.append(f"tests -m gpu: {tests['tests']} run, {tests['failures']} failed, {tests['errors']} errors, "
                     f"{tests['skipped']} skipped")
        lines += [f"  FAILED {name}" for name in tests["failed"][:20]]
    parity = results["parity"]
    if parity:
        lines.append(f"parity --device cuda: {len(parity['rows'])} rows, {len(parity['not_ok'])} not ok")
        lines += [f"  {r['status']} {r['op']} {r['dtype']} {r['backend']}: {r.get('detail', '')}"[:200]
                  for r in parity["not_ok"][:20]]
    bench = results["bench"]
    if bench:
        lines.append(f"bench: {len(bench.get('rows', []))} rows, {len(bench.get('skipped', []))} skipped")
        for row in bench.get("rows", []):
            ratio = row.get("torch_over_ours")
            lines.append(f"  {row['op']} {row['size']} {row['variant']} {row.get('version') or 'cupy'}: "
                         f"{row.get('ms')} ms, torch/ours {'-' if ratio is None else f'{ratio:.2f}'}"
                         + (f", error {row['error'][:80]}" if row.get("error") else ""))
    for device in ("cuda", "cpu"):
        train = results[f"train_{device}"]
        if train:
            lines.append(f"main job on {device}: final loss {train['history']['loss'][-1]:.4f}, "
                         f"test_acc {train.get('test_acc')}")
    lines += [f"missing {name}: {why}" for name, why in results["missing"].items()]
    return lines


def markdown(results) -> list[str]:
    """bench/RESULTS.md's section for this run: the card, the ceilings, the bench table."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from engine.benchmark_cuda import describe_ceilings, format_header, format_row

    bench = results["bench"] or {}
    lines = [f"## `seqfuse bench --device cuda` on {results['card']} ({bench.get('date')})", ""]
    if bench.get("ceilings"):
        lines += [f"cupy {bench.get('cupy')}, torch {bench.get('torch')} (cuDNN {bench.get('cudnn')}); "
                  + describe_ceilings(bench["ceilings"]) + ".", ""]
    lines += format_header(markdown=True)
    lines += [format_row(row, markdown=True) for row in bench.get("rows", [])]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the check's OUT_DIR, or with --markdown its results.json")
    parser.add_argument("--gpu-csv", help="nvidia-smi's card line (the env step writes it)")
    parser.add_argument("--train", help="the main job's --history JSON (--device cuda)")
    parser.add_argument("--train-cpu", help="the same job's history on the CPU")
    parser.add_argument("--markdown", action="store_true", help="print RESULTS.md tables from results.json")
    args = parser.parse_args(argv)
    if args.markdown:
        print("\n".join(markdown(json.loads(Path(args.out).read_text()))))
        return 0
    out = Path(args.out)
    results = collect(out, args.gpu_csv, args.train, args.train_cpu)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print("\n".join(summary(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
