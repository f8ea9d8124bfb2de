"""Command line: `python -m core train | evaluate | predict | sweep | worker | runs | control`.

    train     train a network, record it in the run store, and save it
              (`--from RUN` continues a stored run from its best checkpoint)
    evaluate  a saved model's test accuracy and per-class scores
    predict   the digit in each of some image files
    sweep     many configurations, a grid and/or random search (core/sweep.py)
    worker    train the runs the dashboard queued, then exit (core/worker.py)
    runs      list the stored runs; `runs show RUN`: one run's config, metrics and events
    control   steer a queued or running run: pause, resume, step, stop, set knobs
              (core/control.py, core/knobs.py)

Errors users can act on (bad data, model files, a broken run store, bad run ids, commands
or knob values) are one line on
stderr and exit status 2; a run that diverged or learned nothing exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import presets
from .config import HELP, ConfigError, TrainConfig, validate
from .console import ProgressBar, interrupt_flag
from .control import ControlError, describe
from .control import command as control_command
from .control import send as control_send
from .data import DataError, load_dataset
from .groups import METRICS as GROUP_METRICS
from .groups import Group, group_of, verdict
from .knobs import KNOBS, KnobError, parse_assignments
from .lineage import LineageError, continue_from, parent_of
from .metrics import confusion_matrix, evaluate, per_class
from .model import ModelFileError
from .model_load import load_model
from .model_save import check_output_path
from .preprocess import ImageError, load_image, prepare
from .recorder import train_run
from .run import progress_fraction
from .runs import RUNS_DIR_ENV, STATUSES, Run, RunStore, StoreError
from .sweep import plan, run_dask, run_local, summary, summary_table
from .sweep_spec import SweepError, add_spec_flags, spec_from_flags
from .train import fit, result_meta
from .worker import run_queue

PROG = "python -m core"
# Outcomes that end `train` with exit status 1: the run did not learn what it should have.
FAILED = ("diverged", "learned_nothing")
MAX_REPEATS = 100
WORKER_NICENESS = 10  # the background trainer's lower CPU priority (os.nice)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a network and save it",
        description="Train a network on MNIST (or --data-dir) and save it as .npz.",
    )
    p.set_defaults(subparser=p)
    p.add_argument(
        "--preset",
        choices=presets.preset_names(),
        help="starting configuration; flags below override it (default: default)",
    )
    p.add_argument(
        "--from",
        dest="from_run",
        metavar="RUN",
        help="continue stored run RUN from its best checkpoint: its config, with the flags "
        "below applied on top (no --preset, no --no-store)",
    )
    p.add_argument("--name", help="a name for the run in the run store")
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        metavar="K",
        help="train K runs with seeds seed, seed+1, ... (stored, to compare as a group)",
    )
    # A str, not a Path: Path("") would turn an empty --out into the current folder.
    p.add_argument("--out", help="also save the model here (.npz); default: the run's folder")
    p.add_argument(
        "--no-store",
        action="store_true",
        help=f"do not record the run in the run store (${RUNS_DIR_ENV}, default ./runs)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    group = p.add_argument_group("settings (override the preset)")
    for f in dataclasses.fields(TrainConfig):
        group.add_argument(_flag(f.name), dest=f"set_{f.name}", metavar="V", help=HELP[f.name])


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="test accuracy and per-class scores of a saved model")
    p.set_defaults(subparser=p)
    p.add_argument("model", type=Path)
    p.add_argument("--data-dir", help="folder of IDX files (default: the model's own data)")
    p.add_argument("--json", action="store_true")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="recognise digits in image files",
        description="Recognise one handwritten digit per PNG / JPEG file.",
    )
    p.set_defaults(subparser=p)
    p.add_argument("model", type=Path)
    p.add_argument("images", type=Path, nargs="+")
    p.add_argument("--json", action="store_true", help="print a JSON list")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train many configurations: a grid and/or random search",
        description="Run a sweep from a YAML / JSON spec, or from flags for simple cases, "
        "e.g. `--grid lr=0.1,0.5,1 --set epochs=5`. Each trial is a run in the run store.",
    )
    p.set_defaults(subparser=p)
    add_spec_flags(p)
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel trials on this machine (default: one per core)",
    )
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run the trials on this Dask scheduler's workers instead",
    )
    p.add_argument("--resume", action="store_true", help="skip trials that already finished")
    p.add_argument("--json", action="store_true", help="print the ranked summary as JSON")


def _add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="train the runs queued by the dashboard, then exit",
        description="Train queued runs one at a time until none are left (the dashboard "
        "starts this on its own).",
    )
    p.set_defaults(subparser=p)
    p.add_argument("--runs-dir", help=f"the run store (default: ${RUNS_DIR_ENV} or ./runs)")


def _add_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list the stored runs, or show one (`runs show RUN`)",
        description="`runs` lists the run store's runs, newest first; `runs show RUN` shows "
        "one run's config, progress, per-epoch metrics, lineage and event log.",
        usage=f"{PROG} runs [--status S] [--json]\n       {PROG} runs show RUN [--json]",
    )
    p.set_defaults(subparser=p)
    p.add_argument("what", nargs="*", metavar="show RUN", help="show one run")
    p.add_argument(
        "--status",
        metavar="S",
        help=f"only runs with this status: {', '.join(STATUSES)}, or paused",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_control(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "control",
        help="steer a queued or running run: pause, resume, step, stop, set knobs",
        description="Send a command to a queued or running run; its trainer takes it after "
        f"the current batch. Knobs for set: {', '.join(KNOBS)}.",
        usage=f"{PROG} control RUN pause|resume|stop [--json]\n"
        f"       {PROG} control RUN step [--batches N | --epoch] [--json]\n"
        f"       {PROG} control RUN set KNOB=VALUE [KNOB=VALUE ...] [--json]",
    )
    p.set_defaults(subparser=p)
    p.add_argument("run", metavar="RUN", help="the run's id")
    p.add_argument("action", metavar="ACTION", help="pause, resume, step, stop or set")
    p.add_argument("values", nargs="*", metavar="KNOB=VALUE", help="for set, e.g. lr=0.01")
    p.add_argument("--batches", metavar="N", help="step: train N batches, then hold (default 1)")
    p.add_argument("--epoch", action="store_true", help="step: train to the end of the epoch")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="whether two runs or groups of seeds really differ (Welch's t-test)",
        description="Compare two runs, or two groups of runs, on their final accuracy and say "
        "in one sentence whether the difference is clear. A side is a run id (12), the group "
        "of runs with run 12's settings but any seed (g12), or a list of run ids (12,13,14).",
    )
    p.set_defaults(subparser=p)
    p.add_argument("a", metavar="RUN_OR_GROUP")
    p.add_argument("b", metavar="RUN_OR_GROUP")
    p.add_argument(
        "--metric",
        choices=list(GROUP_METRICS),
        default="test_accuracy",
        help="what to compare (default: test_accuracy)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m core` and its eight commands."""
    parser = argparse.ArgumentParser(prog=PROG, description="A NumPy neural network for MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_sweep(sub)
    _add_worker(sub)
    _add_runs(sub)
    _add_control(sub)
    _add_compare(sub)
    return parser


class UsageError(ValueError):
    """A command line that asks for something impossible; one line on stderr, exit 2."""


def _run_id(text: str) -> int:
    try:
        run_id = int(text)
    except ValueError:
        raise UsageError(f"run id must be a number, got {text!r}") from None
    if run_id < 1:
        raise UsageError(f"run id must be 1 or more, got {text!r}")
    return run_id


def _get_run(store: RunStore, text: str) -> Run:
    run_id = _run_id(text)
    try:
        return store.get(run_id)
    except KeyError:
        raise UsageError(f"there is no run {run_id}") from None


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    overrides = {
        name[4:]: v for name, v in vars(args).items() if name.startswith("set_") and v is not None
    }
    if not 1 <= args.repeats <= MAX_REPEATS:
        raise UsageError(f"--repeats must be between 1 and {MAX_REPEATS}, got {args.repeats}")
    if args.repeats > 1 and (args.no_store or args.out is not None):
        raise UsageError("--repeats keeps every run in the run store: no --out, no --no-store")
    parent = None
    if args.from_run is not None:
        if args.no_store:
            raise UsageError("--from continues a stored run, so it cannot go with --no-store")
        if args.preset is not None:
            raise UsageError("--from starts from the run's own config, so it takes no --preset")
        store = RunStore()
        store.reap()
        parent = parent_of(store, _run_id(args.from_run))
    try:
        base = parent.config if parent else presets.preset(args.preset or "default")
        cfg = base.replace(**overrides)
    except ConfigError as exc:
        parser.error(f"{_flag(exc.field)}: {exc.message}")
    # Checked before any work, so a bad --out costs nothing and loses no trained model.
    out = None
    if args.out is not None or args.no_store:
        out = check_output_path(args.out if args.out is not None else "model.npz")
    dataset = load_dataset(cfg.data_dir or None)
    try:
        validate(cfg, train_pool=len(dataset.train_labels))
        validate(cfg.replace(seed=cfg.seed + args.repeats - 1))  # the last repeat's seed too
    except ConfigError as exc:
        parser.error(f"{_flag(exc.field)}: {exc.message}")
    progress = ProgressBar(sys.stderr if args.json else sys.stdout, show_bar=not args.quiet)
    interrupted = interrupt_flag()
    if args.repeats > 1 and not args.name and parent is None:  # one name for all the seeds
        args.name = f"{args.preset or 'default'}-{time.strftime('%m%d-%H%M%S')}"
    if args.repeats == 1:
        summary, code = _train_one(args, cfg, parent, out, dataset, progress, interrupted)
        if args.json:
            print(json.dumps(summary))
        return code
    summaries, code = [], 0
    for seed in range(cfg.seed, cfg.seed + args.repeats):
        if not args.json:
            print(f"seed {seed}:")
        one, status = _train_one(
            args, cfg.replace(seed=seed), parent, out, dataset, progress, interrupted, seed
        )
        summaries.append(one)
        code = max(code, status)  # one seed that failed fails the command
        if interrupted():
            break
    group = Group([RunStore().get(s["run_id"]) for s in summaries])
    if args.json:
        print(json.dumps({"runs": summaries, "mean": group.mean, "std": group.std, "n": group.n}))
    else:
        print(f"test accuracy over {group.n} seeds: {group.summary()}")
    return code


def _train_one(
    args: argparse.Namespace,
    cfg: TrainConfig,
    parent: Run | None,
    out: Path | None,
    dataset: Any,
    progress: ProgressBar,
    interrupted: Any,
    seed: int | None = None,
) -> tuple[dict[str, Any], int]:
    """Train one run of `train` (one seed of --repeats); its summary and exit status."""
    run = None
    if args.no_store:
        result = fit(cfg, dataset, [progress], should_stop=interrupted)
    else:
        store = RunStore()
        store.reap()
        if parent is not None:
            name = args.name or ""
            name += f" seed {seed}" if seed is not None and name else ""
            run = continue_from(store, parent.id, cfg, name, status="running", pid=os.getpid())
        else:
            preset = args.preset or "default"
            name = args.name or f"{preset}-{time.strftime('%m%d-%H%M%S')}"
            name += f" seed {seed}" if seed is not None else ""
            run = store.create(cfg, name, status="running", pid=os.getpid())
        result = train_run(store, run, dataset, [progress], should_stop=interrupted)
    saved = None
    if result.history:  # fit restored the best epoch's weights, whatever the outcome
        if out is not None:
            try:
                saved = result.model.save(out, result_meta(result, dataset))
            except OSError as exc:
                raise ModelFileError(f"could not save {out} ({exc})") from exc
        elif run is not None and run.checkpoint.exists():
            saved = run.checkpoint
    summary = {
        **result.summary(),
        "seconds": round(result.seconds, 3),
        "model_path": str(saved) if saved else None,
        "run_id": run.id if run else None,
        "parent": run.parent if run else None,
        "epoch_offset": run.epoch_offset if run else 0,
        "config": cfg.to_dict(),
    }
    if result.status in FAILED:
        print(f"{PROG} train: {result.reason}", file=sys.stderr)
        if saved:
            after = " before it diverged" if result.status == "diverged" else ""
            print(
                f"{PROG} train: kept the weights of epoch {result.best_epoch}, its best{after} "
                f"(validation accuracy {result.best_val_accuracy:.2%}); saved {saved}",
                file=sys.stderr,
            )
        return summary, 1
    if not args.json:
        print(result.reason)
        if result.test_accuracy is not None:
            print(
                f"test accuracy {result.test_accuracy:.2%} (best epoch {result.best_epoch}, "
                f"val {result.best_val_accuracy:.2%}), {result.seconds:.1f}s of training"
            )
        if saved:
            print(f"saved {saved}" + (f" (run {run.id} in {run.dir.parent})" if run else ""))
    return summary, 0


def _sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        spec = spec_from_flags(args)
    except SweepError as exc:
        parser.error(str(exc))
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    store = RunStore()
    store.reap()
    try:
        runs, done = plan(store, spec, resume=args.resume)
    except SweepError as exc:
        parser.error(str(exc))
    out = sys.stderr if args.json else sys.stdout
    where = (
        f"the Dask cluster at {args.scheduler}"
        if args.scheduler
        else (f"{min(args.workers, max(len(runs), 1))} worker process(es)")
    )
    print(
        f"sweep {spec.name}: {len(runs) + done} trials"
        + (f" ({done} already finished)" if done else "")
        + f", on {where}",
        file=out,
    )

    def report(run: Run) -> None:
        value = run.best_val_accuracy
        print(
            f"  #{run.id} {run.name}: {run.status}"
            + (f", val {value:.2%}" if value is not None else ""),
            file=out,
            flush=True,
        )

    try:
        if runs and args.scheduler:
            run_dask(store, runs, args.scheduler, report)
        elif runs:
            run_local(store, runs, min(args.workers, len(runs)), report)
    except KeyboardInterrupt:
        print(
            f"{PROG} sweep: stopped; unfinished trials are marked stopped. Continue with --resume.",
            file=sys.stderr,
        )
        return 130
    except OSError as exc:  # e.g. the scheduler cannot be reached
        print(f"{PROG} sweep: error: {exc}", file=sys.stderr)
        return 2
    rows = summary(store, spec)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"\n{summary_table(rows, spec.metric)}")
    return 0


def _status(run: Run) -> str:
    return "paused" if run.paused else run.status


def _progress(run: Run) -> dict[str, Any]:
    """How far a run is: percent done while it runs, else its best val / test accuracy."""
    out: dict[str, Any] = {"percent": None}
    if run.status == "running":
        try:
            out["percent"] = round(100 * progress_fraction(run.progress), 1)
        except (KeyError, TypeError, ZeroDivisionError):
            out["percent"] = 0.0  # started, no batch recorded yet
    elif run.status == "finished":
        out["percent"] = 100.0
    out["best_val_accuracy"] = run.best_val_accuracy
    out["test_accuracy"] = run.test_accuracy
    return out


def _progress_text(run: Run) -> str:
    p = _progress(run)
    if run.status == "running":
        return f"{p['percent']:.1f}% done"
    parts = []
    if run.best_val_accuracy is not None:
        parts.append(f"val {run.best_val_accuracy:.2%}")
    if run.test_accuracy is not None:
        parts.append(f"test {run.test_accuracy:.2%}")
    return ", ".join(parts) or "-"


def _run_row(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "paused": run.paused,
        "progress": _progress(run),
        "parent": run.parent,
    }


def _runs(args: argparse.Namespace) -> int:
    store = RunStore()
    store.reap()
    if args.what:
        if args.what[0] != "show" or len(args.what) != 2:
            raise UsageError(
                f"expected `runs` or `runs show RUN`, got `runs {' '.join(args.what)}`"
            )
        if args.status is not None:
            raise UsageError("--status lists runs; `runs show RUN` takes none")
        return _show(store, args.what[1], args.json)
    if args.status is not None and args.status not in (*STATUSES, "paused"):
        raise UsageError(f"unknown status {args.status!r}; one of {', '.join(STATUSES)}, paused")
    if args.status == "paused":
        runs = [r for r in store.runs(status="running") if r.paused]
    else:
        runs = store.runs(status=args.status)
    if args.json:
        print(json.dumps([_run_row(r) for r in runs]))
        return 0
    if not runs:
        print("no runs" + (f" with status {args.status}" if args.status else ""))
        return 0
    width = max(len(r.name) for r in runs)
    for r in runs:
        print(f"{r.id:>5}  {r.name:<{width}}  {_status(r):<15}  {_progress_text(r)}")
    return 0


def _show(store: RunStore, text: str, as_json: bool) -> int:
    run = _get_run(store, text)
    epochs = store.epochs(run.id)
    events = [{**e, "description": describe(e)} for e in store.events(run.id)]
    if as_json:
        print(
            json.dumps(
                {
                    **_run_row(run),
                    "epoch_offset": run.epoch_offset,
                    "message": run.message,
                    "tags": run.tags,
                    "sweep": run.sweep,
                    "created": run.created,
                    "started": run.started,
                    "ended": run.ended,
                    "best_epoch": run.best_epoch,
                    "test_loss": run.test_loss,
                    "train_seconds": run.train_seconds,
                    "n_params": run.n_params,
                    "config": run.config.to_dict(),
                    "metrics": epochs,
                    "events": events,
                }
            )
        )
        return 0
    print(f"run {run.id}: {run.name}")
    print(f"  status    {_status(run)}" + (f" ({run.message})" if run.message else ""))
    print(f"  progress  {_progress_text(run)}")
    if run.best_epoch is not None:
        print(f"  best      epoch {run.best_epoch}")
    if run.parent is not None:
        print(f"  parent    run {run.parent} (epochs numbered on from {run.epoch_offset})")
    print("  config")
    for key, value in run.config.to_dict().items():
        print(f"    {key:<16} {value}")
    print("  metrics")
    if not epochs:
        print("    (no epoch finished yet)")
    for e in epochs:
        print(
            "    "
            + "  ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in e.items()
            )
        )
    print("  events")
    if not events:
        print("    (none)")
    for e in events:
        print(f"    step {e['step']:>6}  epoch {e['epoch']:6.2f}  {e['description']}")
    return 0


def _control(args: argparse.Namespace) -> int:
    run_id = _run_id(args.run)
    if args.action != "set" and args.values:
        raise UsageError(f"{args.action} takes no KNOB=VALUE settings")
    if args.action != "step" and (args.batches is not None or args.epoch):
        raise UsageError("--batches and --epoch go with step only")
    batches = None
    if args.batches is not None:
        try:
            batches = int(args.batches)
        except ValueError:
            raise UsageError(f"--batches must be a whole number, got {args.batches!r}") from None
    changes = parse_assignments(args.values) if args.action == "set" else {}
    cmd = control_command(args.action, batches=batches, epoch=args.epoch, **changes)
    store = RunStore()
    store.reap()
    run = control_send(store, run_id, cmd)
    if args.json:
        print(json.dumps({"run": run.id, "command": cmd}))
        return 0
    when = (
        "it takes effect when the run starts"
        if run.status == "queued"
        else "it takes effect after the current batch"
    )
    if args.action == "stop" and run.status == "queued":
        when = "the queued run is cancelled"
    what = args.action
    if args.action == "step":
        what = "step to the end of the epoch" if args.epoch else f"step {cmd['batches']}"
    elif args.action == "set":
        what = "set " + ", ".join(f"{k}={v}" for k, v in changes.items())
    print(f"run {run.id}: {what} sent; {when}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.runs_dir:
        os.environ[RUNS_DIR_ENV] = args.runs_dir
    # The background trainer yields the CPU to the dashboard that started it: pages stay
    # quick while runs fill every core, and training loses nothing when nobody clicks.
    os.nice(WORKER_NICENESS)
    run_queue(RunStore(args.runs_dir))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    model, meta = load_model(args.model)
    trained_on = meta.get("config", {}).get("data_dir")
    if not isinstance(trained_on, str):  # metadata is data: its types are not promised
        trained_on = None
    dataset = load_dataset(args.data_dir or trained_on or None)
    if model.n_classes != len(dataset.class_names):
        raise ModelFileError(
            f"{args.model} has {model.n_classes} outputs but {dataset.name} has "
            f"{len(dataset.class_names)} classes"
        )
    result = evaluate(model, dataset.test_images, dataset.test_labels)
    cm = confusion_matrix(result.labels, result.predictions, model.n_classes)
    scores = per_class(cm)
    rows = [
        {"class": dataset.class_names[c], **{k: float(v[c]) for k, v in scores.items()}}
        for c in range(model.n_classes)
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(args.model),
                    "dataset": dataset.name,
                    "test_accuracy": result.accuracy,
                    "test_loss": result.loss,
                    "per_class": rows,
                    "confusion_matrix": cm.tolist(),
                }
            )
        )
        return 0
    print(
        f"{args.model}: test accuracy {result.accuracy:.2%}, loss {result.loss:.4f} "
        f"on {len(result.labels):,} {dataset.name} test images"
    )
    print(f"{'class':>12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}")
    for row in rows:
        print(
            f"{row['class']:>12} {row['precision']:9.4f} {row['recall']:7.4f} {row['f1']:7.4f} "
            f"{int(row['support']):7d}"
        )
    return 0


def _side(store: RunStore, runs: list[Run], text: str) -> list[Run]:
    """The runs one side of `compare` names: "12", "g12" (run 12's group) or "12,13,14"."""
    text = text.strip()
    if text[:1].lower() == "g":
        return group_of(_get_run(store, text[1:]), runs)
    return [_get_run(store, part) for part in text.split(",")]


def _compare(args: argparse.Namespace) -> int:
    store = RunStore()
    runs = store.runs()
    a, b = (Group(_side(store, runs, side), args.metric) for side in (args.a, args.b))
    if set(a.ids) & set(b.ids):
        raise UsageError(f"{args.a} and {args.b} share runs: compare two different runs or groups")
    result = verdict(a, b)
    if args.json:
        sides = {
            name: {"runs": g.ids, "values": g.values, "mean": g.mean, "std": g.std, "n": g.n}
            for name, g in (("a", a), ("b", b))
        }
        print(json.dumps({**sides, "metric": args.metric, **result.to_dict()}))
        return 0
    for name, group in ((args.a, a), (args.b, b)):
        listed = ", ".join(f"#{i}" for i in group.ids)
        print(f"{name}: {group.summary()} · runs {listed}")
    print(result.sentence)
    if result.warning:
        print(f"warning: {result.warning}", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from . import novelty  # only `predict` needs the detector

    model, meta = load_model(args.model)
    names = meta.get("class_names") or [str(i) for i in range(model.n_classes)]
    answers, failed = [], False
    for path in args.images:
        answer: dict[str, Any] = {"file": str(path), "digit": None, "probability": None}
        try:
            prepared = prepare(load_image(path))
        except ImageError as exc:
            answer["error"] = str(exc)
            failed = True
        else:
            if prepared.ok:
                probs = model.predict_proba(prepared.image[None, :, :, None])[0]
                best = int(np.argmax(probs))
                answer.update(
                    digit=names[best],
                    probability=float(probs[best]),
                    probabilities=[round(float(p), 6) for p in probs],
                )
                # The softmax names a digit for anything, a letter too: ask the training
                # digits whether this looks like one before naming it.
                fits = novelty.applies_to(names)  # a Fashion-MNIST model is not second-guessed
                seen = novelty.check(prepared.image) if fits else novelty.LOOKS_LIKE_A_DIGIT
                answer["looks_like_digit"] = seen.looks_like_digit
                # The check's score and the threshold it is held to (None when not checked),
                # so a script can see how clear the verdict was.
                answer["novelty_score"] = round(seen.score, 4) if fits else None
                answer["novelty_threshold"] = round(seen.threshold, 4) if fits else None
                if not seen.looks_like_digit:
                    answer.update(digit=None, closest=names[best], reason=seen.reason)
            else:
                answer["reason"] = prepared.reason
        answers.append(answer)
        if not args.json:
            if "error" in answer:
                print(f"{PROG} predict: error: {answer['error']}", file=sys.stderr)
            elif answer.get("looks_like_digit") is False:
                print(
                    f"{path}: doesn't look like a digit "
                    f"(closest: {answer['closest']}, {answer['probability']:.0%})"
                )
            elif answer["digit"] is None:
                print(f"{path}: {answer['reason']}")
            else:
                print(f"{path}: {answer['digit']} ({answer['probability']:.1%})")
    if args.json:
        print(json.dumps(answers))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args, args.subparser)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "worker":
            return _worker(args)
        if args.command == "sweep":
            return _sweep(args, args.subparser)
        if args.command == "runs":
            return _runs(args)
        if args.command == "control":
            return _control(args)
        if args.command == "compare":
            return _compare(args)
        return _predict(args)
    except (
        DataError,
        ModelFileError,
        StoreError,
        ControlError,
        KnobError,
        LineageError,
        UsageError,
    ) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
