"""The `lossgraph` command: run, check, show, emit.

A user mistake (a bad spec, a missing dataset folder) prints its located message and exits with
status 2; it never shows a Python traceback. `python -m lossgraph` is the same command.
"""

from __future__ import annotations

import argparse
import sys

from .errors import LossgraphError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lossgraph", description="Compile GAN objectives written as math into PyTorch training steps.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train a spec on its dataset")
    run.add_argument("spec", help="a spec file, or a built-in spec's name (e.g. discogan)")
    run.add_argument("--steps", type=int, help="iterations of the schedule (default: the spec's train.steps)")
    run.add_argument("--batch-size", type=int, help="default: the spec's train.batch_size")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", help="run folder (default: runs/<spec name>)")
    run.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    run.add_argument("--data", help="a dataset folder (trainA/ trainB/ testA/ testB/) replacing the spec's dataset")
    run.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")

    check = commands.add_parser("check", help="validate a spec, shape-check it, print its objective")
    check.add_argument("spec")

    show = commands.add_parser("show", help="print the objective as math")
    show.add_argument("spec")
    show.add_argument("--latex", action="store_true", help="LaTeX instead of unicode")

    emit = commands.add_parser("emit", help="print the generated PyTorch code")
    emit.add_argument("spec")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except LossgraphError as error:
        print(f"error: {error}" if "\n" not in str(error) else f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _compile(spec: str):
    from . import compile

    return compile(spec)


def _check(args) -> int:
    from .show import render

    program = _compile(args.spec)
    sys.stdout.write(render(program.written, paper=program.spec.paper))
    networks = ", ".join(f"{c.name}: {c.arch} {c.in_channels}->{c.out_channels}" for c in program.network_configs.values())
    print(f"ok: {len(program.players)} players, {sum(len(p.terms) for p in program.graph.players)} terms; networks {networks}")
    return 0


def _show(args) -> int:
    from .show import render
    from .spec import load

    from .passes.lower import lower

    spec = load(args.spec)
    sys.stdout.write(render(lower(spec), latex=args.latex, paper=spec.paper))
    return 0


def _emit(args) -> int:
    sys.stdout.write(_compile(args.spec).code)
    return 0


def _run(args) -> int:
    from pathlib import Path

    from .data import open_dataset
    from .run import RunOptions, train

    program = _compile(args.spec)
    spec = program.spec
    config = dict(spec.dataset)
    if args.data:  # a folder replaces the built-in source; labels and pairing stay as the spec says
        config = {key: value for key, value in config.items() if key not in ("builtin", "size", "test_size", "styles")}
        config["folder"] = args.data
    base = Path(spec.path).parent if spec.path and Path(spec.path).is_file() else Path.cwd()
    dataset = open_dataset(config, spec.kinds, spec.train.image_size, seed=args.seed, base_dir=None if args.data else base)
    options = RunOptions(
        steps=args.steps or spec.train.steps,
        batch_size=args.batch_size or spec.train.batch_size,
        device=args.device,
        seed=args.seed,
        out_dir=Path(args.out) if args.out else None,
        resume=args.resume,
        progress=False if args.no_progress else None,  # None: a bar on a terminal, log lines otherwise
    )
    train(program, dataset, options)
    return 0


_COMMANDS = {"run": _run, "check": _check, "show": _show, "emit": _emit}


if __name__ == "__main__":
    raise SystemExit(main())
