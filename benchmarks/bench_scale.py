"""Scale (issue 15): the whole build at three sizes growing 4x, on the thread runner and on a 2-worker Dask
cluster, from a synthetic wikiHow-VGSI source (:mod:`benchmarks.synth_vgsi`).

Each build runs in a child process (``python -m benchmarks.bench_scale --child``) so that its peak memory
is its own; the child times every stage of ``run_build`` (wall and CPU seconds of the flow process and all
its descendants, the flow process's ``VmHWM`` after each stage) and this process samples the ``VmHWM`` of
the child and of every process below it (Dask workers, Prefect's server) twice a second. Figures per size:
wall time per stage, time per document, peak memory of the flow process and of the workers, bytes written;
then the growth from the smallest to the largest size against the issue's targets, and the extrapolation
to the paper's scale (53,189 VGSI articles, 772,294 step images, 155,262 documents) on one 2-core machine
and on N workers. ``benchmarks/results/scale.png``: time and memory per size, per stage, stacked.

Sizes: ``WIKIHOW_SCALE_SIZES`` (default 32, 125 and 500 articles: what finishes in well under an hour on a
shared 2-core machine; the issue's 500,2000,8000 take hours there); runners: ``WIKIHOW_SCALE_RUNNERS=thread,dask``.
``python -m benchmarks.bench_scale --one RUNNER SIZE [SIZES]`` measures one build and keeps its figures;
``WIKIHOW_SCALE_REUSE=1`` then assembles the area from the kept ones (each carries its commit), measuring
what is missing; ``WIKIHOW_SCALE_REUSE=only`` leaves a missing one out (listed under ``not_measured``).
Sources and builds live under ``data/builds/bench-scale/`` (sources are kept for the next run, builds are
deleted once measured unless ``WIKIHOW_SCALE_KEEP=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ROOT = REPO / "data" / "builds" / "bench-scale"
DEFAULT_SIZES = (32, 125, 500)
QUICK_SIZES = (12, 48)
PAPER = {"articles": 53_189, "images": 772_294, "documents": 155_262}
# the targets
TARGET_TIME_GROWTH = 1.2  # time per document, largest size / smallest
TARGET_MEMORY_GROWTH = 1.5  # flow-process peak memory, largest size / smallest
TARGET_PAPER_HOURS = 6.0  # the paper's scale on one 2-core machine, offline backend
# stages of run_build in order; "other": what no stage covers (interpreter, Prefect and Dask start and stop)
STAGES = ("plan", "corpus", "merge", "pool", "queries", "filter", "difficulty", "manifest", "report", "other")
PARALLEL = ("corpus", "queries")  # shard stages: spread over the workers; the rest runs in the flow process
STAGE_LABELS = {
    "plan": "scan the VGSI file", "corpus": "corpus shards (parse, segment, images)",
    "merge": "merge corpus + summaries", "pool": "image pool + its step-text vectors",
    "queries": "query shards (offline backend)", "filter": "filter + split + write queries",
    "difficulty": "difficulty table", "manifest": "rejects, manifest, card",
    "report": "audit, validation, HTML report", "other": "start-up, Prefect/Dask, teardown",
}


# --------------------------------------------------------------------------- the child: one build, timed


def _status_kb(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _Clock:
    """Per-stage wall and CPU seconds (flow process + its descendants) and the flow's VmHWM after each."""

    def __init__(self):
        import psutil

        self._me = psutil.Process()
        self._cpu_seen: dict[int, float] = {}
        self.stages: dict[str, dict[str, float]] = {}
        self._depth = 0
        self.started = time.perf_counter()

    def tree_cpu(self) -> float:
        """CPU seconds of this process and of its descendants (a finished one keeps its last reading)."""
        import psutil

        procs = [self._me]
        try:
            procs += self._me.children(recursive=True)
        except psutil.Error:
            pass
        for p in procs:
            try:
                t = p.cpu_times()
                self._cpu_seen[p.pid] = t.user + t.system + (t.children_user + t.children_system
                                                             if p.pid != self._me.pid else 0.0)
            except psutil.Error:
                continue
        return sum(self._cpu_seen.values())

    def wrap(self, stage: str, fn):
        clock = self

        def timed(*args, **kwargs):
            if clock._depth:  # nested in another timed stage: counted there
                return fn(*args, **kwargs)
            clock._depth += 1
            t0, c0 = time.perf_counter(), clock.tree_cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                clock._depth -= 1
                s = clock.stages.setdefault(stage, {"wall_s": 0.0, "cpu_s": 0.0})
                s["wall_s"] += time.perf_counter() - t0
                s["cpu_s"] += clock.tree_cpu() - c0
                s["flow_hwm_mb"] = round(_status_kb("self", "VmHWM") / 1024, 1)

        return timed


def _instrument(clock: _Clock) -> None:
    import wikihow_tiir.audit as audit
    import wikihow_tiir.difficulty as difficulty
    import wikihow_tiir.publish.validate as validate
    import wikihow_tiir.report as report
    from wikihow_tiir import build

    for stage, module, name in (
            ("plan", build, "plan_corpus"), ("merge", build, "finalize_corpus"),
            ("merge", build, "source_summary"), ("merge", build, "corpus_summary"), ("pool", build, "plan_queries"),
            ("filter", build, "finalize_queries"), ("difficulty", difficulty, "measure_difficulty"),
            ("manifest", build, "collect_rejects"), ("manifest", build, "write_manifest"),
            ("manifest", build, "_write_card"), ("report", audit, "reapply_after_build"),
            ("report", validate, "validate_dataset"), ("report", report, "write_report")):
        setattr(module, name, clock.wrap(stage, getattr(module, name)))
    run_build = build.run_build

    def timed_run_build(cfg, output, map_shards=None, log=lambda m: None, **kwargs):
        def timed_map(fn, specs):
            stage = specs[0].stage if specs else "corpus"
            return clock.wrap(stage, map_shards)(fn, specs)

        return run_build(cfg, output, timed_map if map_shards is not None else None, log, **kwargs)

    build.run_build = timed_run_build


def child(args: dict[str, Any]) -> None:
    """One timed build (in a fresh process); writes its figures to ``args['result']``."""
    clock = _Clock()
    import flows.build_dataset as fb
    from wikihow_tiir.config import load_config

    imported = time.perf_counter() - clock.started
    _instrument(clock)
    cfg = load_config(profile="vgsi", overrides=[
        f'source.vgsi.text_file="{args["source"]}/WikihowText_data.json"',
        f'source.vgsi.images="{args["source"]}/images"',
        f'runner.kind="{args["runner"]}"', f"runner.workers={args['workers']}"])
    t0, c0 = time.perf_counter(), clock.tree_cpu()
    summary = fb.build_dataset(cfg, args["output"], show_progress=False)
    wall, cpu = time.perf_counter() - t0, clock.tree_cpu() - c0
    manifest = json.loads((Path(args["output"]) / "manifest.json").read_text(encoding="utf-8"))
    stages = {k: {"wall_s": round(v["wall_s"], 2), "cpu_s": round(v["cpu_s"], 2), "flow_hwm_mb": v["flow_hwm_mb"]}
              for k, v in clock.stages.items()}
    stages["other"] = {"wall_s": round(wall - sum(v["wall_s"] for v in clock.stages.values()), 2),
                       "cpu_s": round(cpu - sum(v["cpu_s"] for v in clock.stages.values()), 2)}
    corpus = manifest["statistics"]["corpus"]
    out = {"build_wall_s": round(wall, 2), "build_cpu_s": round(cpu, 2), "import_s": round(imported, 2),
           "stages": stages, "flow_hwm_mb": round(_status_kb("self", "VmHWM") / 1024, 1),
           "documents": summary["documents"], "queries": summary["queries"],
           "generated_queries": manifest.get("filter", {}).get("generated", 0),
           "images": round(corpus.get("avg_images", 0) * summary["documents"]) if corpus else None,
           "articles": manifest["sources"]["articles"], "corpus_statistics": corpus,
           "validation_problems": summary["validation_problems"]}
    Path(args["result"]).write_text(json.dumps(out, indent=2, sort_keys=True), encoding="utf-8")


# --------------------------------------------------------------------------- the parent: sources, runs, figures


def _kind(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "resource_tracker" in text:
        return "helper"
    if "multiprocessing" in text or "dask" in text or "distributed" in text:
        return "worker"
    return "other"


class _Sampler(threading.Thread):
    """The VmHWM of a process and of all its descendants, twice a second (a high-water mark: a late
    reading is still the peak, only growth in a process's last half second can be missed)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peaks: dict[int, tuple[str, float]] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._halt.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                kb = _status_kb(p.pid, "VmHWM")
                if not kb:
                    continue
                if p.pid not in self.peaks:
                    try:
                        kind = "flow" if p.pid == self.pid else _kind(p.cmdline())
                    except psutil.Error:
                        continue
                else:
                    kind = self.peaks[p.pid][0]
                self.peaks[p.pid] = (kind, max(kb / 1024, self.peaks.get(p.pid, ("", 0.0))[1]))
            self._halt.wait(0.5)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        by_kind: dict[str, list[float]] = {}
        for kind, mb in self.peaks.values():
            by_kind.setdefault(kind, []).append(round(mb, 1))
        return {k: sorted(v, reverse=True) for k, v in sorted(by_kind.items())}


def _bytes(folder: Path) -> dict[str, int]:
    out = {"dataset": 0, "rejects": 0, "report": 0, "work": 0}
    for p in folder.rglob("*"):
        if p.is_file():
            top = p.relative_to(folder).parts[0]
            key = top if top in ("rejects", "report", "work") else "dataset"
            out[key] += p.stat().st_size
    out["total"] = sum(out.values())
    return out


def minilm_rate(n_texts: int = 256) -> float:
    """MiniLM texts/s (bare ``encode``, batch 32) on the filter bench's synthetic documents: how fast this
    machine is right now, against the quiet-machine figure of ``results/filter.json``."""
    from benchmarks.bench_filter import synthetic
    from wikihow_tiir.encoders.minilm import load_text_embedder

    docs, _ = synthetic(n_texts, 0, seed=1)
    texts = [d.content.text for d in docs]
    model = load_text_embedder()
    model.encode(texts[:32], batch_size=32)
    t = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    return round(len(texts) / (time.perf_counter() - t), 1)


def reference_rate() -> float | None:
    """The filter bench's bare-encode texts/s (measured alone on this machine), or None."""
    try:
        figures = json.loads((RESULTS / "filter.json").read_text(encoding="utf-8"))["figures"]
        return float(figures["throughput"]["texts_per_s"]["bare_encode_call"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def measure(source: Path, output: Path, runner: str, workers: int = 2) -> dict[str, Any]:
    """One build of ``source`` in a child process: its figures, the peaks of every process, bytes written."""
    shutil.rmtree(output, ignore_errors=True)
    result = output.with_name(output.name + ".result.json")
    args = {"source": str(source), "output": str(output), "runner": runner, "workers": workers,
            "result": str(result)}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    load = os.getloadavg()[0]
    rate_before = minilm_rate()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_scale", "--child", json.dumps(args)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = _Sampler(proc.pid)
    sampler.start()
    log, _ = proc.communicate()
    peaks = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"the {runner} build of {source} failed ({proc.returncode}):\n{log[-4000:]}")
    figures = json.loads(result.read_text(encoding="utf-8"))
    figures["process_wall_s"] = round(time.perf_counter() - t0, 2)
    figures["minilm_texts_per_s_before_after"] = [rate_before, minilm_rate()]
    figures["minilm_texts_per_s"] = round(sum(figures["minilm_texts_per_s_before_after"]) / 2, 1)
    figures["load_average_at_start"] = round(load, 2)
    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    figures["peaks_mb"] = peaks
    figures["flow_peak_mb"] = max(figures["flow_hwm_mb"], *(peaks.get("flow") or [0]))
    figures["worker_peak_mb"] = max(peaks.get("worker") or [0])
    figures["bytes_written"] = _bytes(output)
    docs = max(1, figures["documents"])
    figures["wall_ms_per_document"] = round(1000 * figures["build_wall_s"] / docs, 2)
    figures["cpu_ms_per_document"] = round(1000 * figures["build_cpu_s"] / docs, 2)
    return figures


def run_file(runner: str, size: int, seed: int) -> Path:
    """Where one measured build's figures are kept (``WIKIHOW_SCALE_REUSE=1`` assembles the area from them)."""
    return ROOT / "runs" / f"{runner}-{size}-seed{seed}.json"


def measure_one(runner: str, size: int, sizes: tuple[int, ...], seed: int = 13) -> dict[str, Any]:
    """Generate the (nested) sources up to ``size`` and measure one build; keep its figures in
    :func:`run_file`. Lets the largest, longest build start first, in a process of its own."""
    previous: Path | None = None
    for s in sorted(x for x in sizes if x <= size):
        path, info = source_for(s, seed, previous)
        previous = path
    r = measure(path, ROOT / "builds" / f"{runner}-{size}", runner)
    r["source"] = info
    r["code"] = _git_commit()
    if os.environ.get("WIKIHOW_SCALE_KEEP") != "1":
        shutil.rmtree(ROOT / "builds" / f"{runner}-{size}", ignore_errors=True)
    run_file(runner, size, seed).parent.mkdir(parents=True, exist_ok=True)
    run_file(runner, size, seed).write_text(json.dumps(r, indent=2, sort_keys=True), encoding="utf-8")
    return r


def source_for(size: int, seed: int, images_from: Path | None) -> tuple[Path, dict[str, Any]]:
    from benchmarks.synth_vgsi import generate

    src = ROOT / "sources" / f"vgsi-{seed}-{size}"
    return src, generate(src, size, seed=seed, workers=2, images_from=images_from)


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(fixed, per-unit) of the line through the two largest points: the marginal cost at the largest
    sizes, so anything growing faster than linear shows up in the extrapolation instead of averaging out.
    A falling line (noise) is read as flat at the largest value."""
    (x1, y1), (x2, y2) = sorted(zip(xs, ys, strict=True))[-2:]
    slope = (y2 - y1) / (x2 - x1) if x2 != x1 else y2 / max(x2, 1)
    if slope < 0:
        return y2, 0.0
    return max(0.0, y2 - slope * x2), slope


def _quadratic(xs: list[float], ys: list[float], at: float) -> float:
    """The parabola through the three points at ``at`` (a quadratic part, if any, grows with it);
    never below the linear extrapolation."""
    if len(xs) < 3:
        a, b = _fit(xs, ys)
        return a + b * at
    c = np.polyfit(np.asarray(xs[-3:], float), np.asarray(ys[-3:], float), 2)
    a, b = _fit(xs, ys)
    return float(max(np.polyval(c, at), a + b * at))


def extrapolate(runs: list[dict[str, Any]], target_articles: int, workers: int = 2,
                reference_rate: float | None = None) -> dict[str, Any]:
    """Seconds per stage at ``target_articles``: the line through the two largest sizes (and, as a check
    for anything quadratic, the parabola through all three), wall and CPU; the flow process's and the
    workers' peak memory; the time on an unloaded 2-core machine (CPU seconds / 2, and the measured wall
    time scaled by how fast MiniLM ran during the runs against ``reference_rate``); for the Dask runs the
    time on N workers (the shard stages spread over them, the rest in the flow process)."""
    xs = [r["articles"] for r in runs]
    per_stage: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        row = {}
        for what in ("wall_s", "cpu_s"):
            ys = [max(0.0, r["stages"].get(stage, {}).get(what, 0.0)) for r in runs]
            a, b = _fit(xs, ys)
            row[what] = round(a + b * target_articles, 1)
            row[what.replace("_s", "_quadratic_s")] = round(_quadratic(xs, ys, target_articles), 1)
        per_stage[stage] = row
    total = {k: sum(v[k] for v in per_stage.values()) for k in per_stage["corpus"]}
    fa, fb = _fit(xs, [r["flow_peak_mb"] for r in runs])
    wa, wb = _fit(xs, [r["worker_peak_mb"] for r in runs])
    docs_per_article = sum(r["documents"] for r in runs) / max(1, sum(xs))
    out: dict[str, Any] = {
        "articles": target_articles, "documents": round(docs_per_article * target_articles),
        "stages": per_stage, "wall_h": round(total["wall_s"] / 3600, 2),
        "wall_quadratic_h": round(total["wall_quadratic_s"] / 3600, 2),
        "cpu_h": round(total["cpu_s"] / 3600, 2), "cpu_quadratic_h": round(total["cpu_quadratic_s"] / 3600, 2),
        # on an unloaded 2-core machine a build takes at least its CPU time over the two cores
        "cpu_over_2_cores_h": round(total["cpu_s"] / 2 / 3600, 2),
        "flow_peak_mb": round(fa + fb * target_articles), "worker_peak_mb": round(wa + wb * target_articles)}
    rates = [r["minilm_texts_per_s"] for r in runs if r.get("minilm_texts_per_s")]
    speed = None
    if reference_rate and rates:
        speed = sum(rates) / len(rates) / reference_rate  # < 1: this machine ran slower than the reference
        out["minilm_speed_vs_reference"] = round(speed, 3)
        out["unloaded_wall_h"] = round(total["wall_s"] * speed / 3600, 2)
    parallel = sum(per_stage[s]["wall_s"] for s in PARALLEL)
    serial = total["wall_s"] - parallel
    scale = speed if speed is not None else 1.0
    out["on_n_workers_h"] = {str(n): round((serial + parallel * workers / n) * scale / 3600, 2)
                             for n in (2, 4, 8, 16, 32)}
    out["serial_share"] = round(serial / total["wall_s"], 3) if total["wall_s"] else None
    return out


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (out.stdout.strip() + ("+changes" if dirty else "")) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _growth(runs: list[dict[str, Any]]) -> dict[str, Any]:
    small, large = runs[0], runs[-1]
    time_ratio = large["wall_ms_per_document"] / small["wall_ms_per_document"]
    cpu_ratio = large["cpu_ms_per_document"] / small["cpu_ms_per_document"]
    mem_ratio = large["flow_peak_mb"] / small["flow_peak_mb"]
    return {"time_per_document": round(time_ratio, 3), "cpu_per_document": round(cpu_ratio, 3),
            "flow_peak_memory": round(mem_ratio, 3),
            "worker_peak_memory": round(large["worker_peak_mb"] / small["worker_peak_mb"], 3)
            if small["worker_peak_mb"] else None,
            "meets_time_target": time_ratio <= TARGET_TIME_GROWTH,
            "meets_memory_target": mem_ratio <= TARGET_MEMORY_GROWTH}


def plot(figures: dict[str, Any], path: Path) -> None:
    """Time and flow-process memory per size, one column per runner; time stacked by stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runners = list(figures["runs"])
    fig, axes = plt.subplots(2, len(runners), figsize=(6.5 * len(runners), 9), squeeze=False)
    colours = plt.get_cmap("tab10")
    for col, runner in enumerate(runners):
        runs = figures["runs"][runner]
        labels = [f"{r['articles']:,} art.\n{r['documents']:,} docs" for r in runs]
        x = range(len(runs))
        ax = axes[0][col]
        bottom = [0.0] * len(runs)
        for i, stage in enumerate(STAGES):
            vals = [r["stages"].get(stage, {}).get("wall_s", 0.0) / 60 for r in runs]
            ax.bar(x, vals, bottom=bottom, color=colours(i), label=stage)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        for i, r in enumerate(runs):
            ax.text(i, bottom[i], f"{r['wall_ms_per_document']:.0f} ms/doc", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(x), labels)
        ax.set_ylabel("wall time (minutes)")
        ax.set_title(f"{runner} runner: wall time per stage")
        ax.legend(fontsize=7, ncols=2)
        ax = axes[1][col]
        bottom = [0.0] * len(runs)
        # memory: the flow process's VmHWM after each stage, stacked as increments (which stage raised the peak)
        for i, stage in enumerate(STAGES[:-1]):
            hwm = [max([r["stages"][s]["flow_hwm_mb"] for s in STAGES[:STAGES.index(stage) + 1]
                        if "flow_hwm_mb" in r["stages"].get(s, {})] or [0.0]) for r in runs]
            inc = [max(0.0, h - b) for h, b in zip(hwm, bottom, strict=True)]
            ax.bar(x, inc, bottom=bottom, color=colours(i), label=stage)
            bottom = [b + v for b, v in zip(bottom, inc, strict=True)]
        w = [r["worker_peak_mb"] for r in runs]
        if any(w):
            ax.plot(list(x), w, "k--o", label="Dask worker peak")
        ax.set_xticks(list(x), labels)
        ax.set_ylabel("flow-process peak RSS (MB)")
        ax.set_title(f"{runner} runner: peak memory (stacked: the stage that raised it)")
        ax.legend(fontsize=7, ncols=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool = False) -> dict[str, Any]:
    env_sizes = os.environ.get("WIKIHOW_SCALE_SIZES")
    sizes = tuple(int(s) for s in env_sizes.split(",")) if env_sizes else QUICK_SIZES if quick else DEFAULT_SIZES
    runners = tuple(os.environ.get("WIKIHOW_SCALE_RUNNERS", "thread,dask").split(","))
    keep = os.environ.get("WIKIHOW_SCALE_KEEP") == "1"
    # runs measured before by `--one` (each says its code); "only": a size not measured so is left out
    reuse = os.environ.get("WIKIHOW_SCALE_REUSE") in ("1", "only")
    reuse_only = os.environ.get("WIKIHOW_SCALE_REUSE") == "only"
    seed = 13
    sources: dict[int, dict[str, Any]] = {}
    previous: Path | None = None
    paths: dict[int, Path] = {}
    for size in sorted(sizes):
        paths[size], sources[size] = source_for(size, seed, previous)
        previous = paths[size]
    figures: dict[str, Any] = {"sizes_articles": list(sizes), "runners": list(runners), "seed": seed,
                               "sources": sources, "stage_labels": STAGE_LABELS, "runs": {}}
    for runner in runners:
        runs = []
        for size in sizes:
            out = ROOT / "builds" / f"{runner}-{size}"
            if reuse and run_file(runner, size, seed).is_file():
                runs.append(json.loads(run_file(runner, size, seed).read_text(encoding="utf-8")))
                print(f"   {runner} {size}: measured before ({runs[-1].get('code')})", flush=True)
                continue
            if reuse_only:
                figures.setdefault("not_measured", []).append({"runner": runner, "articles": size})
                continue
            print(f"   {runner} {size} articles ...", flush=True)
            r = measure(paths[size], out, runner)
            r["code"] = _git_commit()
            print(f"   {runner} {size}: {r['build_wall_s']} s, {r['documents']} documents, "
                  f"flow peak {r['flow_peak_mb']} MB, workers {r['worker_peak_mb']} MB", flush=True)
            runs.append(r)
            if not keep:
                shutil.rmtree(out, ignore_errors=True)
        if runs:
            figures["runs"][runner] = runs
    figures["growth"] = {runner: _growth(runs) for runner, runs in figures["runs"].items() if len(runs) > 1}
    figures["targets"] = {"time_per_document_growth_max": TARGET_TIME_GROWTH,
                          "flow_peak_memory_growth_max": TARGET_MEMORY_GROWTH,
                          "paper_scale_one_machine_hours_max": TARGET_PAPER_HOURS}
    ref = reference_rate()
    figures["minilm_reference_texts_per_s"] = ref
    figures["extrapolation"] = {runner: extrapolate(runs, PAPER["articles"], reference_rate=ref)
                                for runner, runs in figures["runs"].items() if len(runs) > 1}
    figures["paper"] = PAPER
    figures["code"] = _git_commit()
    plot(figures, (RESULTS / "quick" if quick else RESULTS) / "scale.png")
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":  # the flow pickles its globals: keep ours importable
        from benchmarks.bench_scale import child as _child

        _child(json.loads(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "--one":  # --one RUNNER SIZE [SIZES]: one build, kept
        from benchmarks.bench_scale import measure_one as _one

        _sizes = tuple(int(x) for x in sys.argv[4].split(",")) if len(sys.argv) > 4 else DEFAULT_SIZES
        _r = _one(sys.argv[2], int(sys.argv[3]), _sizes)
        print(json.dumps({k: _r[k] for k in ("build_wall_s", "documents", "flow_peak_mb", "worker_peak_mb")}))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
