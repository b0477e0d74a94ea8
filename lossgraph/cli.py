"""The `lossgraph` command: run, check, show, emit, graph, plot, translate, export.

A user mistake (a bad spec, a missing dataset folder) prints its located message and exits with
status 2; it never shows a Python traceback. `python -m lossgraph` is the same command.

Every command takes `--import MODULE` (repeatable): a module of the user's, imported before the
spec is read, that registers network architectures (`lossgraph.register_arch`; plugins.py).
"""

from __future__ import annotations

import argparse
import sys

from lossgraph.language.errors import LossgraphError


def add_acceleration_arguments(parser: argparse.ArgumentParser, whose: str = "") -> None:
    """`--compile/--no-compile`, `--precision`, `--cuda-graphs/--no-cuda-graphs`, each None unless
    given: the device's default (accelerate.py). `whose` prefixes the help ("lossgraph's ")."""
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help=f"torch.compile {whose}networks the training steps call (default: on for CUDA, off on the CPU)")
    parser.add_argument("--precision", metavar="fp32|bf16", default=None,
                        help=f"bf16: {whose}networks under bf16 autocast, losses and weights in fp32 "
                             "(default: bf16 on CUDA, fp32 on the CPU)")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                        help=f"replay {whose}compiled networks as CUDA graphs (default: on when compiling on CUDA)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lossgraph", description="Compile GAN objectives written as math into PyTorch training steps.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train a spec on its dataset")
    run.add_argument("spec", help="a spec file, or a built-in spec's name (e.g. discogan)")
    _add_overrides(run)
    run.add_argument("--steps", type=int,
                     help="iterations of the schedule (default: the spec's train.steps, or its train.epochs in steps)")
    run.add_argument("--batch-size", type=int,
                     help="default: the spec's train.batch_size; under torchrun, the global batch the processes share")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                     help="under torchrun each process takes cuda:LOCAL_RANK, or the CPU (see docs/cli.md)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", help="run folder (default: runs/<spec name>)")
    run.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    run.add_argument("--data", help="a dataset folder (trainA/ trainB/ testA/ testB/) replacing the spec's dataset")
    _add_fid_weights(run)
    run.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    run.add_argument("--skip-nonfinite", action="store_true",
                     help="skip a step whose loss is NaN or infinite (its updates are undone) instead of stopping")
    events = run.add_mutually_exclusive_group()
    events.add_argument("--tensorboard", dest="tensorboard", action="store_const", const=True, default=None,
                        help="write TensorBoard event files to RUN/tensorboard (an error if tensorboard is not "
                             "installed; by default they are written whenever it is)")
    events.add_argument("--no-tensorboard", dest="tensorboard", action="store_const", const=False,
                        help="write no TensorBoard event files")
    run.add_argument("--allow-spec-change", action="store_true",
                     help="with --resume: continue though the spec differs from the run's spec.yaml")
    add_acceleration_arguments(run)

    check = commands.add_parser("check", help="validate a spec, shape-check it, print its objective")
    check.add_argument("spec")
    _add_overrides(check)
    _add_fid_weights(check)
    check.add_argument("--explain", action="store_true",
                       help="also print what each compiler pass did: which rewrite rule fired where, terms constant for a player")

    show = commands.add_parser("show", help="print the objective as math")
    show.add_argument("spec")
    _add_overrides(show)
    show.add_argument("--latex", action="store_true", help="LaTeX instead of unicode")

    emit = commands.add_parser("emit", help="print the generated PyTorch code")
    emit.add_argument("spec")
    _add_overrides(emit)
    emit.add_argument("--plan", action="store_true",
                      help="print the phase plan instead: what each step computes, keeps, reuses and batches")
    emit.add_argument("--judge", metavar="NAME", help="print the module that fits judge NAME instead")

    graph = commands.add_parser("graph", help="draw the objective as a picture: values, terms, players, gradient paths")
    graph.add_argument("spec")
    _add_overrides(graph)
    graph.add_argument("-o", "--output", help="the picture, .svg or .png, or Graphviz source .dot (default: <spec name>.svg)")

    plot = commands.add_parser("plot", help="draw a run's loss curves and held-out metrics to a PNG")
    plot.add_argument("run", help="a run folder (holds metrics.csv, and eval.csv when the spec evaluates)")
    plot.add_argument("-o", "--output", help="the picture, .png, .svg or .pdf (default: RUN/losses.png)")

    translate = commands.add_parser("translate", help="apply a trained generator to images on disk")
    translate.add_argument("run", help="a run folder (holds spec.yaml and checkpoints/)")
    translate.add_argument("--input", required=True, help="an image, or a folder of images (searched recursively)")
    translate.add_argument("--output", required=True, help="folder for the translated PNGs (same file names)")
    translate.add_argument("--network", help="the generator to apply (default: the first that maps one image to an image)")
    translate.add_argument("--checkpoint", metavar="best|latest|STEP|PATH",
                           help="best (the run's best by train.keep_best), latest (the default), a step number, "
                                "or a checkpoint folder")
    translate.add_argument("--ema", action="store_true",
                           help="apply the network's moving average (the spec's ema:), saved in the checkpoint as <name>@ema")
    translate.add_argument("--spec", help="the spec the run was trained from, for a run folder without spec.yaml")
    translate.add_argument("--size", type=int, metavar="N",
                           help="resize each image so its shorter side is N and centre-crop it (default: keep each "
                                "image's size, padded to what the network's down-sampling needs and cropped back)")
    translate.add_argument("--batch-size", type=int, default=16)
    translate.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    export = commands.add_parser("export", help="write a trained generator as an ONNX model or a torch.export program")
    export.add_argument("run", help="a run folder (holds spec.yaml and checkpoints/)")
    export.add_argument("-o", "--output", required=True, help="the file: .onnx (ONNX) or .pt2 (torch.export), by suffix")
    export.add_argument("--network", help="the generator to export (default: the first that maps one image to an image)")
    export.add_argument("--checkpoint", metavar="best|latest|STEP|PATH",
                        help="the run's best (train.keep_best), latest (the default) or step STEP, or a checkpoint folder")
    export.add_argument("--ema", action="store_true", help="export the network's moving average (the spec's ema:)")
    export.add_argument("--size", type=int, help="a fixed side N (default: any side the network keeps, when fully convolutional)")
    export.add_argument("--spec", help="the spec the run was trained from, for a run folder without spec.yaml")
    for command in (run, check, show, emit, graph, plot, translate, export):
        command.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                             help="import MODULE first (the current directory is searched first), a module that "
                                  "registers your own networks with lossgraph.register_arch; repeatable")
    return parser


def _add_overrides(command: argparse.ArgumentParser) -> None:
    command.add_argument("overrides", nargs="*", metavar="KEY.PATH=VALUE",
                         help="change a value of the spec, e.g. train.steps=2000 players.G.minimize.cycle.weight=5 "
                              "(a YAML value; null removes a key; +KEY adds a new name; see docs/language.md)")


def _add_fid_weights(command: argparse.ArgumentParser) -> None:
    command.add_argument("--fid-weights", metavar="PATH",
                         help="the FID Inception weights file (pt_inception-2015-12-05-6726825d.pth) for the spec's "
                              "fid, kid and diversity metrics: train.fid_weights, as an absolute path; never downloaded")


def _overrides(args) -> list[str]:
    """The command's overrides; `--fid-weights PATH` is one more, `train.fid_weights=` the absolute
    path (so the run's spec.yaml names the file wherever it is read)."""
    if not getattr(args, "fid_weights", None):
        return list(args.overrides)
    import json
    from pathlib import Path

    return [*args.overrides, f"train.fid_weights={json.dumps(str(Path(args.fid_weights).expanduser().resolve()))}"]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides after an option (`run SPEC --steps 5 train.batch_size=4`) arrive here, in order
        if hasattr(args, "overrides") and not any(item.startswith("-") for item in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.imports:
            from lossgraph.language.plugins import import_modules

            import_modules(args.imports)
        return _COMMANDS[args.command](args)
    except LossgraphError as error:
        print(f"error: {error}" if "\n" not in str(error) else f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _compile(spec, overrides=()):
    from lossgraph import compile
    from lossgraph.language.spec import load

    return compile(load(spec, overrides) if overrides else spec)


def _check(args) -> int:
    from lossgraph.views.show import network_outputs, render

    program = _compile(args.spec, _overrides(args))
    if "builtin" in program.spec.dataset:  # built-in data needs no files: open it, as run will
        from lossgraph.data.located import open_located

        open_located(program.spec, dict(program.spec.dataset), program.spec.train.image_size)
    sys.stdout.write(render(program.written, paper=program.spec.paper))
    outputs = network_outputs(program.batchable.shapes)  # the dry run's: an encoder's real output, a network's heads
    networks = ", ".join(f"{c.name}: {c.arch} {c.in_channels} -> {outputs.get(c.name, c.out_channels)}"
                         for c in program.network_configs.values())
    if args.explain:
        for note in program.notes:
            print(f"  {note}")
    if program.distributions:
        choice = program.features
        names = ", ".join(metric.name for metric in program.distributions)
        if choice is None:
            print(f"{names}: over the whole held-out set")
        else:
            network = f"judge {choice.judge}" if choice.kind == "judge" else f"the FID Inception network ({choice.weights})"
            print(f"{names}: over the whole held-out set, on the features of {network}")
    print(f"ok: {len(program.players)} players, {sum(len(p.terms) for p in program.graph.players)} terms; networks {networks}")
    return 0


def _show(args) -> int:
    from lossgraph.views.show import render
    from lossgraph.language.spec import load

    from lossgraph.compiler.passes.lower import lower

    spec = load(args.spec, args.overrides)
    sys.stdout.write(render(lower(spec), latex=args.latex, spec=spec))
    return 0


def _emit(args) -> int:
    from lossgraph.compiler.phases import describe_plan
    from lossgraph.language.errors import LossgraphError, did_you_mean

    program = _compile(args.spec, args.overrides)
    if args.plan:
        sys.stdout.write(describe_plan(program.phases, program.graph))
    elif args.judge:
        if args.judge not in program.judge_code:
            hint = did_you_mean(args.judge, program.judge_code) or "the spec declares no judges"
            raise LossgraphError(f"no judge '{args.judge}' in {program.name} ({hint})")
        sys.stdout.write(program.judge_code[args.judge])
    else:
        sys.stdout.write(program.code)
    return 0


def _run(args) -> int:
    from pathlib import Path

    from lossgraph.train.accelerate import given
    from lossgraph.data import FOLDER_KEYS
    from lossgraph.data.located import open_located
    from lossgraph.train.run import RunOptions, train

    from lossgraph.language.spec import load

    spec = load(args.spec, _overrides(args))
    config = dict(spec.dataset)
    if args.data:  # a folder replaces the built-in source; labels and pairing stay as the spec says
        config = {key: value for key, value in config.items() if key in FOLDER_KEYS}
        config["folder"] = args.data
    base = Path(spec.path).parent if spec.path and Path(spec.path).is_file() else Path.cwd()
    if isinstance(config.get("folder"), str):
        # absolute, so the run's resolved spec (RUN/spec.yaml) names the data wherever it is read
        config["folder"] = str((Path.cwd() if args.data else base).joinpath(Path(config["folder"]).expanduser()).resolve())
    if config != dict(spec.dataset):
        spec = spec.model_copy(update={"dataset": config})
    weights = spec.train.fid_weights
    if weights and not Path(weights).expanduser().is_absolute():  # absolute, like the data folder
        resolved = str((base / Path(weights).expanduser()).resolve())
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"fid_weights": resolved})})
    if args.resume:  # an arch the run's --import registered, missing now: say which --import to add
        from lossgraph.language.plugins import require_archs

        require_archs(spec, Path(args.out) if args.out else Path("runs") / spec.name)
    program = _compile(spec)
    dataset = open_located(spec, config, spec.train.image_size, seed=args.seed, base_dir=None if args.data else base,
                           given_by=f"--data {args.data}" if args.data else None)
    options = RunOptions(
        steps=args.steps,  # None: the spec's train.steps, or its train.epochs in steps (train/epochs.py)
        # None: the spec's; 0 or less is refused by the run's plan, not replaced by the spec's
        batch_size=spec.train.batch_size if args.batch_size is None else args.batch_size,
        device=args.device,
        seed=args.seed,
        out_dir=Path(args.out) if args.out else None,
        resume=args.resume,
        progress=False if args.no_progress else None,  # None: a bar on a terminal, log lines otherwise
        skip_nonfinite=args.skip_nonfinite,
        allow_spec_change=args.allow_spec_change,
        tensorboard=args.tensorboard,
        imports=tuple(args.imports),
        **given(args),
    )
    train(program, dataset, options)
    return 0


def _graph(args) -> int:
    from lossgraph.views.picture import check_suffix, write_picture
    from lossgraph.language.spec import load

    if args.output:
        check_suffix(args.output)  # before compiling: a wrong suffix should not wait for the spec
    spec = load(args.spec, args.overrides)
    output = args.output or f"{spec.name}.svg"
    picture = write_picture(spec, output)
    counts = {kind: sum(1 for node in picture.nodes if node.kind == kind) for kind in ("value", "term", "player")}
    print(f"wrote {output}: {counts['value']} computed values, {counts['term']} terms, {counts['player']} players")
    return 0


def _plot(args) -> int:
    from lossgraph.views.plot import plot_run

    output = plot_run(args.run, args.output)
    print(f"wrote {output}")
    return 0


def _translate(args) -> int:
    from lossgraph.train.translate import translate

    result = translate(args.run, args.input, args.output, network=args.network, checkpoint=args.checkpoint,
                       spec=args.spec, batch_size=args.batch_size, device=args.device, ema=args.ema, size=args.size)
    used = f"{result.network}'s moving average" if result.ema else result.network
    if result.note:
        print(f"note: {result.note}")
    sized = f"at {result.size}x{result.size}" if result.size else "each at its own size"
    print(f"translated {len(result.written)} images with {used} ({result.checkpoint}) into {args.output}, {sized}")
    return 0


_COMMANDS = {"run": _run, "check": _check, "show": _show, "emit": _emit}
def _export(args) -> int:
    from lossgraph.train.export import export

    result = export(args.run, args.output, network=args.network, checkpoint=args.checkpoint, spec=args.spec,
                    ema=args.ema, size=args.size)
    meta = result.metadata
    sides = (f"H and W multiples of {meta['size_multiple']} from {meta['min_size']}" if result.dynamic
             else f"{meta['size']}x{meta['size']} only")
    print(f"wrote {result.path}: {meta['network']} from {result.checkpoint}; images (N, {meta['channels']}, H, W) "
          f"in [-1, 1], {sides}")
    for note in result.notes:
        print(f"  {note}")
    if result.checked_with is not None:
        print(f"  checked with {result.checked_with}: largest difference from the PyTorch network {result.difference:.2g}")
    return 0


_COMMANDS.update({"graph": _graph, "plot": _plot, "translate": _translate, "export": _export})


if __name__ == "__main__":
    raise SystemExit(main())
