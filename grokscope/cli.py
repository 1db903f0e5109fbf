"""The `grokscope` command. Errors reach the user as one line (exit 2 for usage errors)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grokscope.devices import resolve_device
from grokscope.errors import GrokscopeError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as argparse does, but with our prefix
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def cmd_presets(args) -> int:
    from grokscope.config import load_preset, preset_names

    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {load_preset(name).description}")
    return 0


def cmd_train(args) -> int:
    from grokscope.config import load_preset, overrides_name, with_overrides
    from grokscope.training import train

    live = _live_args(args)
    if args.fork:
        return _train_branch(args)
    if args.resume:
        if args.preset or args.set:
            raise UsageError("--resume continues a run with its stored config; drop --preset/--set")
        from grokscope.store import load_run

        config, out = load_run(args.resume).config, args.resume
    else:
        if args.preset is None:
            raise UsageError("train needs --preset NAME (see `grokscope presets`) or --resume DIR")
        config = with_overrides(load_preset(args.preset), _with_data_dir(args))
        if args.set:
            import dataclasses

            config = dataclasses.replace(config, name=overrides_name(args.preset, args.set))
        from grokscope.training.state import default_out

        out = args.out if args.out is not None else default_out(config)
    kw = dict(resume=bool(args.resume), progress=not args.quiet, device=resolve_device(args.device), log=args.log)
    if live is None:
        print(train(config, out, **kw).path)
        return 0
    from grokscope.analysis.live import live_analysis

    analysis_out = args.analysis_out or Path("analyses") / Path(out).name
    with live_analysis(out, args.analyze, out=analysis_out, every=args.every, params=live,
                       device=kw["device"], log=args.log) as watcher:
        run = train(config, out, suffix=watcher.suffix, **kw)
        report = watcher.finish(progress=not args.quiet)
    print(run.path)
    print(report)
    return 0


def _live_args(args) -> dict | None:
    """--analyze's probe parameters (checked before training starts), or None without --analyze."""
    if args.analyze is None:
        if args.every is not None or args.param or args.analysis_out is not None:
            raise UsageError("--every, --param and --analysis-out go with --analyze PROBES")
        return None
    from grokscope.analysis.live import check_selection

    if args.fork:
        raise UsageError("--analyze does not go with --from yet: train the branch, then `grokscope analyze` it")
    params = _probe_params(args.param)
    check_selection(args.analyze, args.every, params)
    return params


def cmd_watch(args) -> int:
    from grokscope.analysis.live import watch
    from grokscope.store import load_run
    from grokscope.tracking import check_logger

    check_logger(args.log)
    params = _probe_params(args.param)
    from grokscope.analysis.live import check_selection

    check_selection(args.probe, args.every, params)
    if args.poll <= 0:
        raise UsageError(f"--poll must be a positive number of seconds, got {args.poll:g}")
    run = load_run(args.run)
    from grokscope.analysis import default_out

    out = args.out or default_out(run)
    watch(run.path, args.probe, out=out, every=args.every, params=params, device=resolve_device(args.device),
          log=args.log, poll_seconds=args.poll, idle=args.priority == "idle", progress=not args.quiet)
    _print_manifest(out)
    print(Path(out) / "report.html")
    return 0


def _train_branch(args) -> int:
    """`train --from RUN@STEP [--set ...] --out DIR`: a branch of RUN from its checkpoint at STEP."""
    from grokscope.training import branch

    parent, sep, step = args.fork.rpartition("@")
    if not sep or not step.isdigit() or not parent:
        raise UsageError(f"--from expects RUN_DIR@STEP (a run directory and one of its checkpoint steps), "
                         f"got {args.fork!r}")
    if args.preset or args.resume:
        raise UsageError("--from starts from the parent's stored config; drop --preset/--resume (change it with --set)")
    if args.out is None:
        raise UsageError("--from needs --out DIR for the branch")
    run = branch(parent, int(step), args.out, list(args.set), progress=not args.quiet,
                 device=resolve_device(args.device))
    print(run.path)
    return 0


def _task_text(cfg) -> str:
    from grokscope.tasks import describe_task

    return describe_task(cfg)


def _with_data_dir(args) -> list[str]:
    extra = [f"task.data_dir={Path(args.data_dir).resolve()}"] if getattr(args, "data_dir", None) else []
    return list(args.set) + extra


def cmd_landscape(args) -> int:
    from grokscope.config import load_preset, with_overrides
    from grokscope.experiments.landscape import landscape, parse_scales

    config = with_overrides(load_preset(args.preset), _with_data_dir(args))
    scales = parse_scales(args.scales)
    out = args.out or Path("checkpoints") / f"landscape-{args.preset}"
    landscape(config, scales, out, jobs=args.jobs, progress=not args.quiet, device=resolve_device(args.device))
    print(out / "landscape.png")
    return 0


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{what} expects comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"{what} expects positive numbers, got {text!r}")
    return values


def cmd_llc_calibrate(args) -> int:
    from grokscope.analysis import default_out
    from grokscope.experiments.llc_calibration import calibrate
    from grokscope.measures.llc import SGLDSettings
    from grokscope.probes.llc import devinterp_missing
    from grokscope.store import load_run

    missing = devinterp_missing()
    if missing:
        raise UsageError(missing)
    run = load_run(args.run)
    epsilons, nbetas = _floats(args.epsilons, "--epsilons"), _floats(args.nbetas, "--nbetas")
    if args.chains < 2 or args.draws < 8:
        raise UsageError("--chains must be at least 2 and --draws at least 8 (the diagnostics need them)")
    base = SGLDSettings(gamma=args.gamma, chains=args.chains, draws=args.draws, burnin=args.burnin,
                        batch_size=args.batch_size)
    out = args.out or default_out(run) / "llc-calibration"
    rec = calibrate(run, args.step, epsilons=epsilons, nbetas=nbetas, base=base, out=out, progress=not args.quiet)
    if rec["epsilon"] is None:
        print(f"no recommendation: {rec['why']}")
    else:
        print(f"recommended: epsilon={rec['epsilon']:g} nbeta={rec['nbeta']:g} (λ̂ = {rec['llc_mean']:.3g} at step "
              f"{rec['step']:,}): {rec['why']}")
        print(f"use: grokscope analyze {run.path} --probe llc --param llc.epsilon={rec['epsilon']:g} "
              f"--param llc.nbeta={rec['nbeta']:g}")
    print(Path(out) / "figures" / "llc_calibration.png")
    return 0


def cmd_sweep(args) -> int:
    from grokscope.experiments.sweep import sweep

    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.checkpoints == "all":
        checkpoints = 0
    else:
        try:
            checkpoints = int(args.checkpoints)
            if checkpoints < 1:
                raise ValueError
        except ValueError:
            raise UsageError(f"--checkpoints expects a count >= 1 or 'all', got {args.checkpoints!r}") from None
    from grokscope.tracking import check_logger

    check_logger(args.log)
    from grokscope.experiments.sweep import SlurmOptions

    slurm = SlurmOptions(partition=args.partition, time=args.time, cpus_per_task=args.cpus_per_task,
                         gpus_per_task=args.gpus_per_task, max_parallel=args.max_parallel, cluster=args.slurm_cluster)
    out = sweep(args.preset, args.grid, seeds=args.seeds, overrides=args.set, out=args.out,
                jobs=args.jobs, executor=args.executor, address=args.address, slurm=slurm,
                device=resolve_device(args.device),
                vectorize=args.vectorize, checkpoints=checkpoints, lag=args.lag,
                threshold=args.threshold, progress=not args.quiet, dry_run=args.dry_run)
    if not args.dry_run:
        if args.log != "none":
            from grokscope.store import is_run
            from grokscope.tracking import log_sweep

            log_sweep(args.log, out, sorted(p for p in (out / "runs").iterdir() if is_run(p)))
        print(out / "report.html")
    return 0


def cmd_reproduce(args) -> int:
    from grokscope.reproduce import SCALES, registry, reproduce

    if not args.name:
        for r in registry().values():
            took = ", ".join(f"{k} {v}" for k, v in r.minutes.items())
            print(f"{r.name:18s} {r.title}\n{'':18s} {r.paper}" + (f" ({took} on 2 cores)" if took else ""))
        print(f"\nrun one: grokscope reproduce NAME [--scale {'|'.join(SCALES)}] [--out DIR]")
        return 0
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    only = [p.strip() for p in args.parts.split(",") if p.strip()] if args.parts else None
    out = reproduce(args.name, args.scale, out=args.out, jobs=args.jobs, device=resolve_device(args.device),
                    progress=not args.quiet, gallery=args.gallery, data_dir=args.data_dir, only=only,
                    overrides=args.set)
    print(out / "report.md")
    return 0


def cmd_critical_fraction(args) -> int:
    from grokscope.measures.parallelogram import critical_fraction

    if args.p < 3:
        raise UsageError(f"p must be at least 3, got {args.p}")
    result = critical_fraction(args.p, samples=args.samples, seed=args.seed)
    print(f"# p={args.p}: P(training pairs determine the representation up to translation and "
          f"scale); {result.method}")
    print("n_train,fraction,probability,stderr")
    for n, f, pr, se in zip(result.sizes, result.fractions, result.probability, result.stderr):
        print(f"{n},{f:.4f},{pr:.4f},{se:.4f}")
    print(f"# critical fraction (probability 1/2): {result.critical:.3f}")
    return 0


def _or(value, default):
    return default if value is None else value


def _config_lines(cfg, n_params: int) -> list[str]:
    return [
        f"task        {_task_text(cfg)} split_seed={cfg.split_seed}",
        f"model       {cfg.model.name}, {n_params:,} parameters",
        f"optim       {cfg.optim.name} lr={cfg.optim.lr} weight_decay={cfg.optim.weight_decay} "
        f"warmup={cfg.optim.warmup_steps} grokfast={cfg.optim.grokfast}" +
        (f" embed_lr={_or(cfg.optim.embed_lr, cfg.optim.lr)} embed_weight_decay="
         f"{_or(cfg.optim.embed_weight_decay, cfg.optim.weight_decay)}"
         if cfg.optim.embed_lr is not None or cfg.optim.embed_weight_decay is not None else ""),
        f"train       seed={cfg.train.seed} batch={cfg.train.batch_size or 'full'} "
        f"loss={cfg.train.loss} ({cfg.train.loss_dtype})",
    ]


def _schedule_text(cfg) -> str:
    from grokscope.training.schedule import resolved_every

    return (f"(every step to {cfg.checkpoint.dense_until}, {cfg.checkpoint.log_points} log-spaced, "
            f"every {resolved_every(cfg.train.steps, cfg.checkpoint)})")


def _plan(args) -> int:
    """`grokscope info --preset NAME [--set ...]`: what a run would be, before it starts."""
    import torch

    from grokscope.config import load_preset, with_overrides
    from grokscope.files import format_bytes, free_bytes
    from grokscope.models import build_model
    from grokscope.tasks import build_task
    from grokscope.training.schedule import checkpoint_schedule
    from grokscope.training.state import check_config, default_out, disk_estimate

    config = with_overrides(load_preset(args.preset), _with_data_dir(args))
    check_config(config)
    torch.manual_seed(config.train.seed)
    model = build_model(config, build_task(config))
    out = default_out(config)
    need = disk_estimate(config, model)
    lines = [f"plan        preset {args.preset}, {config.train.steps:,} steps (not trained yet)",
             *_config_lines(config, sum(p.numel() for p in model.parameters())),
             f"checkpoints {len(checkpoint_schedule(config.train.steps, config.checkpoint))} scheduled "
             + _schedule_text(config),
             f"disk        about {format_bytes(need)} when complete; {format_bytes(free_bytes(out))} free "
             f"where it would go ({out})"]
    print("\n".join(lines))
    return 0


def cmd_info(args) -> int:
    import numpy as np

    from grokscope.files import directory_bytes, format_bytes
    from grokscope.store import load_run

    if args.preset:
        if args.run:
            raise UsageError("info takes a run directory or --preset NAME, not both")
        return _plan(args)
    if args.run is None:
        raise UsageError("info needs a run directory, or --preset NAME for a run not trained yet")
    run = load_run(args.run)
    cfg = run.config
    metrics = run.metrics
    done = int(metrics["step"][-1]) if len(metrics["step"]) else 0
    sched = run.info.get("schedule", [])
    estimate = run.info.get("disk_estimate_bytes")
    lines = [
        f"run         {run.path}",
        f"status      {run.status} ({done:,} / {cfg.train.steps:,} steps logged)"
        + (f"; stopped {cfg.train.stop_after:,} steps after generalizing (train.stop_after)"
           if run.info.get("stopped_early_at") is not None else ""),
        *_config_lines(cfg, run.info.get("n_params", 0)),
        f"checkpoints {len(run.steps)} on disk of {len(sched)} scheduled " + _schedule_text(cfg),
        f"disk        {format_bytes(directory_bytes(run.path))} used"
        + (f"; about {format_bytes(estimate)} when complete" if estimate else ""),
    ]
    if done:
        from grokscope.measures.transitions import loss_rule, transition_rules, transition_steps

        last = {k: v[-1] for k, v in metrics.items()}
        mem, gen = transition_steps(metrics)
        rule_m, rule_g = transition_rules(loss_rule(metrics))
        acc = lambda v: "" if np.isnan(v) else f" acc {v:.1%}"
        lines += [
            f"last        step {done:,}: train loss {last['train_loss']:.3g}{acc(last['train_acc'])}, "
            f"test loss {last['test_loss']:.3g}{acc(last['test_acc'])}, weight norm {last['weight_norm']:.2f}",
            f"memorized   {'step %s' % f'{mem:,}' if mem is not None else 'not yet'} ({rule_m})",
            f"generalized {'step %s' % f'{gen:,}' if gen is not None else 'not yet'} ({rule_g})",
        ]
    if run.status == "diverged":
        lines.append(f"diverged    {run.info.get('divergence', '')}")
    print("\n".join(lines))
    return 0


def cmd_probes(args) -> int:
    from grokscope.probes.base import available_probes

    rows = available_probes()
    width = max(len(n) for n, _, _ in rows)
    for name, desc, origin in rows:
        print(f"{name:<{width}}  {origin:<10}  {desc}")
    return 0


def _probe_params(items: list[str]) -> dict[str, dict]:
    import json

    params: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        probe, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise UsageError(f"--param expects probe.key=value, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        params.setdefault(probe, {})[name] = parsed
    return params


def cmd_analyze(args) -> int:
    from grokscope.analysis import analyze, default_out
    from grokscope.report.document import build_report
    from grokscope.store import load_run
    from grokscope.tracking import check_logger

    check_logger(args.log)
    run = load_run(args.run)
    out = args.out or default_out(run)
    analyze(run, args.probe, out=out, every=args.every, steps=args.steps, count=args.count,
            jobs=args.jobs, device=resolve_device(args.device), params=_probe_params(args.param),
            progress=not args.quiet, report=False)
    _print_manifest(out)
    report = build_report(out, run)
    if args.log != "none":
        from grokscope.tracking import log_analysis

        log_analysis(args.log, out, run)
    print(report)
    return 0


def _print_manifest(out: Path) -> None:
    from grokscope.tables import read_manifest

    manifest = read_manifest(out)
    for name, entry in manifest["probes"].items():
        reason = f"  ({entry['reason']})" if entry.get("reason") else ""
        print(f"  {name:<14} {entry['status']}{reason}", file=sys.stderr)


def cmd_explain(args) -> int:
    from grokscope.analysis.engine import default_out
    from grokscope.experiments.explain import explain
    from grokscope.store import load_run
    from grokscope.tables import has_manifest

    run = load_run(args.run)
    out = args.out or default_out(run) / "explain"
    only = [m.strip() for m in args.only.split(",") if m.strip()] if args.only else None
    table = explain(run, out=out, only=only, budget=args.budget, progress=not args.quiet,
                    device=resolve_device(args.device))
    for i in range(len(table["mechanism"])):
        print(f"{table['mechanism'][i]}: {table['verdict'][i]}" + (f" ({table['measured'][i]})"
                                                                  if table["measured"][i] != "-" else ""))
    if has_manifest(Path(out).parent):   # the analysis's report leads its "why" with the verdicts
        from grokscope.report.document import build_report

        build_report(Path(out).parent, run)
    print(Path(out) / "mechanisms.csv")
    return 0


def cmd_report(args) -> int:
    from grokscope.analysis import default_out
    from grokscope.report.document import build_report
    from grokscope.store import is_run, load_run
    from grokscope.tables import has_manifest, read_manifest

    path = Path(args.target)
    if has_manifest(path):
        out, run = path, None
        run_path = Path(read_manifest(path)["run"])
        if is_run(run_path):
            run = load_run(run_path)
    else:
        run = load_run(path)
        out = args.out or default_out(run)
    print(build_report(out, run, force=True, single_file=args.single_file))
    return 0


def cmd_compare(args) -> int:
    from grokscope.report.compare import compare
    from grokscope.store import load_run

    runs = [load_run(p) for p in args.runs]
    out = args.out or Path("analyses") / ("compare-" + "-".join(r.name for r in runs))[:120]
    print(compare(runs, out))
    return 0


def cmd_import(args) -> int:
    from grokscope.external.importers import import_run

    out = args.out or Path("checkpoints") / Path(args.source).stem
    if args.format == "checkpoints":
        run = import_run("checkpoints", args.source, out, model=args.model, task=args.task, config=args.config,
                         overrides=args.set, split=args.split, step_pattern=args.step_pattern,
                         hooks=args.hooks, progress=not args.quiet)
    else:
        extra = [flag for flag, value in (("--model", args.model), ("--task", args.task), ("--config", args.config),
                                          ("--split", args.split), ("--set", args.set)) if value]
        if extra:
            raise UsageError(f"{extra[0]} applies to `import checkpoints`, not to `import {args.format}`")
        run = import_run(args.format, args.source, out)
    print(run.path)
    return 0


# ---------------------------------------------------------------- the parser: flags several commands share

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N (default cpu)"
WANDB = "(WANDB_MODE=offline: a local folder for `wandb sync`)"


def _set(p, help="override a config value; repeatable") -> None:
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=help)


def _device(p) -> None:
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)


def _quiet(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _log(p, what: str) -> None:
    p.add_argument("--log", default="none", choices=["none", "wandb", "tensorboard"],
                   help=f"also send {what} to Weights & Biases {WANDB}, or write them as TensorBoard "
                   "event files (under the directory's tensorboard/)")


def _data_dir(p, **kw) -> None:
    p.add_argument("--data-dir", help="folder of a data set on disk (MNIST IDX files)", **kw)


# ---------------------------------------------------------------- one function per command's flags

def _train_args(p) -> None:
    p.add_argument("--preset", help="recipe name (see `grokscope presets`)")
    _set(p)
    p.add_argument("--out", type=Path, help="run directory (default checkpoints/<run name>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--from", dest="fork", metavar="RUN_DIR@STEP", help="a branch: RUN_DIR's config (changed "
                   "with --set) trained from its checkpoint at STEP, with a fresh optimizer, into --out")
    _device(p), _data_dir(p), _quiet(p), _log(p, "metrics and config (and with --analyze, the probes' columns)")
    live = p.add_argument_group("analysis beside training (docs/live.md)")
    live.add_argument("--analyze", metavar="PROBES", help="run these probes (comma-separated, as `analyze "
                      "--probe`) on each new checkpoint in another process while the run trains; the report "
                      "grows as it goes")
    _analysis_selection(live)
    live.add_argument("--analysis-out", type=Path, metavar="DIR",
                      help="with --analyze: the analysis directory (default analyses/<run name>)")


def _analysis_selection(p) -> None:
    p.add_argument("--every", type=int, help="only checkpoints at multiples of this step")
    p.add_argument("--param", action="append", default=[], metavar="PROBE.KEY=VALUE",
                   help="a probe parameter, e.g. fourier.per_checkpoint_keys=true")


def _watch_args(p) -> None:
    p.add_argument("run", type=Path, help="a run directory that is training (ours, a sweep's, a Recorder's)")
    p.add_argument("--probe", action="append", help="probe names or module:Class / file.py:Class, "
                   "comma-separated or repeated (default: metrics,weights,fourier,progress,phases)")
    _analysis_selection(p)
    p.add_argument("--out", type=Path, help="analysis directory (default analyses/<run name>)")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between looks for new checkpoints")
    p.add_argument("--priority", choices=["idle", "normal"], default="idle",
                   help="idle (default): one thread at idle priority while the run trains, so the "
                   "training never waits for the watcher; all threads for the final analysis")
    _device(p), _quiet(p), _log(p, "the probe columns as they are measured, and the figures at the end")


def _landscape_args(p) -> None:
    p.add_argument("--preset", required=True)
    p.add_argument("--scales", default="0.1:10:11:log", help="LO:HI:N[:log|lin] or a comma list, "
                   "multiples of the default-init norm w0")
    _set(p), _data_dir(p)
    p.add_argument("--jobs", type=int, default=2, help="norms trained at once (processes)")
    p.add_argument("--out", type=Path, help="default checkpoints/landscape-<preset>")
    _quiet(p), _device(p)


def _llc_calibrate_args(p) -> None:
    p.add_argument("run", help="run directory")
    p.add_argument("--step", type=int, help="checkpoint to calibrate on (default: the last)")
    p.add_argument("--epsilons", default="1e-4,3e-4,1e-3,3e-3,1e-2", help="step sizes, comma-separated")
    p.add_argument("--nbetas", default="2,10,30,100", help="inverse temperatures n·beta, comma-separated")
    p.add_argument("--gamma", type=float, default=100.0, help="localization strength")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--burnin", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=128, help="0: full batch")
    p.add_argument("--out", type=Path, help="default analyses/<run>/llc-calibration")
    _quiet(p)


def _sweep_args(p) -> None:
    p.add_argument("--preset", action="append", required=True,
                   help="recipe name; repeat to compare presets in one sweep")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=LO:HI:N[:log|lin] | KEY=V1,V2",
                   help="a grid axis (linear unless :log); repeatable")
    p.add_argument("--seeds", help="a count N (the preset seed and the N-1 after it) or a list 0,1,2")
    _set(p, "override applied to every run")
    p.add_argument("--out", type=Path, help="sweep directory (default checkpoints/sweep-<preset>)")
    p.add_argument("--jobs", type=int, default=2, help="local worker processes (default 2)")
    _executor_args(p)
    p.add_argument("--vectorize", default="auto",
                   help="train compatible small runs stacked: auto (when it pays), always, never")
    p.add_argument("--checkpoints", default="10",
                   help="log-spaced checkpoints kept per run (default 10), or 'all' for the preset's schedule")
    p.add_argument("--lag", type=int, default=1000, help="grokking: test lags train by more than this")
    p.add_argument("--threshold", type=float, default=0.9, help="accuracy threshold (default 0.9)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and the plan; train nothing")
    _quiet(p), _log(p, "every run, the phase table and figures"), _device(p)


def _executor_args(p) -> None:
    p.add_argument("--executor", default="local", help="local (default), ray, or slurm (one job array through "
                   "submitit; --jobs is then the number of array tasks)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default starts a local Ray")
    p.add_argument("--partition", help="slurm: the partition")
    p.add_argument("--time", type=float, default=60, help="slurm: minutes per array task (default 60); a task that "
                   "runs out is requeued and resumes from its run directories")
    p.add_argument("--cpus-per-task", type=int, default=1, help="slurm: CPUs per task (torch threads)")
    p.add_argument("--gpus-per-task", type=int, default=0, help="slurm: GPUs per task")
    p.add_argument("--max-parallel", type=int, default=0, help="slurm: at most this many tasks at once")
    p.add_argument("--slurm-cluster", default="slurm", help="slurm (default), or local: the same job array as "
                   "real processes on this machine (submitit's local executor)")


def _reproduce_args(p) -> None:
    p.add_argument("name", nargs="?", help="the reproduction (none: list them)")
    p.add_argument("--scale", default="quick", help="quick (a minute or two, qualitative) or full (the paper's scale)")
    p.add_argument("--out", type=Path, help="output directory (default reproductions/<name>/<scale>)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes for training and probes (default 2)")
    _device(p)
    p.add_argument("--data-dir", type=Path, help="MNIST's IDX files, for the reproductions that need them")
    p.add_argument("--gallery", type=Path, help="also copy the figure, table and page to GALLERY/<name>/ "
                   "(docs/reproductions is the docs' gallery)")
    p.add_argument("--parts", help="only these parts, comma-separated (a long reproduction in pieces; the page "
                   "leaves the others' checks out)")
    _set(p, "a config value for every run (e.g. train.flush_denormals=true), after each part's own; repeatable. "
            "The default --out then names it, and the page's command line says it")
    _quiet(p)


def _critical_fraction_args(p) -> None:
    p.add_argument("p", type=int, nargs="?", default=10)
    p.add_argument("--samples", type=int, default=2000, help="Monte Carlo orderings (p > 5)")
    p.add_argument("--seed", type=int, default=0)


def _info_args(p) -> None:
    p.add_argument("run", type=Path, nargs="?")
    p.add_argument("--preset", help="describe this recipe's run before training it: schedule, disk use")
    _set(p), _data_dir(p)


def _analyze_args(p) -> None:
    p.add_argument("run", type=Path)
    p.add_argument("--probe", action="append", help="probe names or module:Class / file.py:Class, "
                   "comma-separated or repeated (default: metrics,weights,fourier,progress,phases)")
    _analysis_selection(p)
    p.add_argument("--steps", help="only checkpoints in A:B")
    p.add_argument("--count", type=int, help="about this many checkpoints, spread log-linearly")
    p.add_argument("--jobs", type=int, default=1, help="processes over checkpoints")
    p.add_argument("--out", type=Path, help="analysis directory (default analyses/<run name>)")
    _device(p), _quiet(p), _log(p, "the probe columns and the report's figures")


def _explain_args(p) -> None:
    p.add_argument("run", type=Path)
    p.add_argument("--only", help="mechanisms, comma-separated (weight_decay, norm_held, norm_at_end, circuit)")
    p.add_argument("--budget", type=float, default=3.0,
                   help="an intervention trains this many times the control's delay (default 3)")
    p.add_argument("--out", type=Path, help="default analyses/<run>/explain")
    _device(p), _quiet(p)


def _report_args(p) -> None:
    p.add_argument("target", help="a run directory (its analyses/<run>) or an analysis directory")
    p.add_argument("--out", type=Path, help="analysis directory, when target is a run")
    p.add_argument("--single-file", action="store_true",
                   help="also write report-single.html, one file with the figures embedded, for sharing")


def _compare_args(p) -> None:
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path)


def _import_args(p) -> None:
    p.add_argument("format", choices=["nanda", "checkpoints"],
                   help="nanda: Nanda et al.'s published .pth; checkpoints: a folder of state dicts")
    p.add_argument("source", type=Path, help="the .pth file (nanda) or the folder of checkpoints")
    p.add_argument("--out", type=Path)
    p.add_argument("--model", help="checkpoints: module:function or path/file.py:function that builds the model")
    p.add_argument("--task", help="checkpoints: the task name (modular, toy_add, mnist, ...); settings with --set")
    p.add_argument("--config", type=Path, help="checkpoints: a JSON or TOML file of config sections ([task], "
                   "[optim], [train])")
    _set(p, "checkpoints: a config value (task.p=97, task.frac_train=0.3, ...); repeatable")
    p.add_argument("--split", type=Path, help="checkpoints: a JSON file with train_indices (and test_indices), rows "
                   "of the task's grid; default: grokscope's split rule with the config's seed")
    p.add_argument("--step-pattern", default=r"(\d+)", help="checkpoints: regular expression for the step in a "
                   "file name (its last match; its first group if it has one); default (\\d+)")
    p.add_argument("--hooks", default="", help="checkpoints: our names for the model's parts, "
                   "e.g. embed=emb,unembed=out,blocks.0.mlp.hook_post=act (docs/recorder.md)")
    _quiet(p)


def _no_args(p) -> None:
    pass


# (name, help, its flags, what it runs): the commands in the order --help lists them
COMMANDS = (
    ("presets", "list the training recipes", _no_args, "cmd_presets"),
    ("train", "train a run into a run directory", _train_args, "cmd_train"),
    ("landscape", "best train/test loss against the weight norm (Omnigrok)", _landscape_args, "cmd_landscape"),
    ("llc-calibrate", "sweep SGLD step size and temperature for the llc probe on one checkpoint",
     _llc_calibrate_args, "cmd_llc_calibrate"),
    ("sweep", "train a grid of runs and draw its phase diagram (Liu et al. 2022)", _sweep_args, "cmd_sweep"),
    ("reproduce", "a seed paper's headline result at its own settings, paper against ours", _reproduce_args,
     "cmd_reproduce"),
    ("critical-fraction", "probability that n training pairs determine the toy addition's representation "
     "(Liu et al. 2022)", _critical_fraction_args, "cmd_critical_fraction"),
    ("info", "config, progress, schedule, disk use and transition steps of a run (or, with --preset, of a run "
     "before it starts)", _info_args, "cmd_info"),
    ("probes", "list the probes: name, origin, description", _no_args, "cmd_probes"),
    ("analyze", "run probes over a run's checkpoints and write the report", _analyze_args, "cmd_analyze"),
    ("watch", "analyze a run while it trains: each new checkpoint, a report that grows; the final analysis "
     "when it ends", _watch_args, "cmd_watch"),
    ("explain", "test each paper's mechanism for a run's grokking by intervention (branches against a control)",
     _explain_args, "cmd_explain"),
    ("report", "rebuild figures and the report from an analysis's tables", _report_args, "cmd_report"),
    ("compare", "overlay runs' curves and tabulate their phase steps", _compare_args, "cmd_compare"),
    ("import", "make a run directory from checkpoints trained elsewhere", _import_args, "cmd_import"),
)


def build_parser() -> argparse.ArgumentParser:
    from grokscope.version import __version__

    parser = _Parser(prog="grokscope", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"grokscope {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name, help, add_args, fn in COMMANDS:
        p = sub.add_parser(name, help=help)
        add_args(p)
        p.set_defaults(fn=globals()[fn])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "fn", None):
            parser.print_help()
            return 2
        return args.fn(args)
    except GrokscopeError as e:
        print(f"grokscope: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a permission, a missing folder, a device error: what and where, in one line
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"grokscope: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("grokscope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
