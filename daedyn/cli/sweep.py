"""``daedyn sweep SPEC``: run (or resume) a declarative sweep; ``--dry-run`` prints the chunk plan."""

from __future__ import annotations

import json


def _run(args) -> int:
    if args.from_ is not None:
        from daedyn.cli._sweep_from import run_from

        return run_from(args, ([args.spec] if args.spec else []) + list(args.assignments))
    if args.spec is None:
        raise ValueError("give a spec file (daedyn sweep SPEC.toml), or --from RUN.toml NAME=VALUES")
    if args.assignments:
        raise ValueError(f"NAME=VALUES assignments go with --from RUN.toml; got {args.assignments[0]!r}")
    import jax

    from daedyn import sweep
    from daedyn._extras import require
    from daedyn._progress import progress_bar, sweep_callback

    if args.distributed:
        kw = {}
        if args.coordinator:
            kw = dict(coordinator_address=args.coordinator, num_processes=args.num_processes,
                      process_id=args.process_id)
        jax.distributed.initialize(**kw)
    from daedyn._checks import check_range

    if args.chunk_size is not None:
        check_range("--chunk-size", args.chunk_size, 1)
    if args.max_memory is not None:
        try:
            sweep.parse_memory(args.max_memory)
        except ValueError as err:
            raise ValueError(f"--max-memory: {err}") from None
    if args.out is not None and not args.out.strip():
        raise ValueError("--out: empty path")
    spec = sweep.load_spec(args.spec)
    changes = {}
    if args.out:
        changes["path"] = args.out
    if args.max_memory is not None:
        changes["max_memory"] = args.max_memory
    if args.chunk_size is not None:
        changes["chunk_size"] = args.chunk_size
    if args.x64:
        changes["dtype"] = "float64"
    spec = spec.replace(**changes) if changes else spec
    allow = tuple(args.allow_import or ())
    if args.dry_run:
        p = sweep.plan(spec, allow_import=allow)
        if args.json:
            print(json.dumps({"spec": spec.to_dict(), "spec_hash": spec.hash, "plan": p.to_dict()}, indent=1))
        else:
            print(f"function    {spec.to_dict()['function']}")
            print(p.describe())
            print(f"output      {spec.path or '(none given: use --out)'}")
        return 0
    if spec.path is None:
        raise ValueError("no output path: give --out PATH or 'path' in the spec")
    require("xarray", "zarr", what="daedyn sweep")
    main = jax.process_index() == 0
    # on stderr, also with --json
    bar = None if (args.quiet or not main) else progress_bar("chunks", desc="sweep")
    if bar is not None:
        bar.start(0, sweep.plan(spec, allow_import=allow).n_chunks)  # "compiling" until the first chunk
    shown = None if bar is None else sweep_callback(bar)
    kept = {}

    def progress(p) -> None:  # the last record: what an interrupt keeps
        kept["done"], kept["total"] = p.chunks_done, p.chunks_total
        if shown is not None:
            shown(p)

    try:
        summary = sweep.run(spec, progress=progress, overwrite=args.overwrite, compression=args.compression,
                            allow_import=allow)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        import sys

        done = (f"{kept['done']} of {kept['total']} chunks" if kept else "the chunks finished before this "
                "run (none in this one)")
        print(f"daedyn sweep: interrupted; {done} are kept in {spec.path}. Rerun the same command to "
              "resume: finished chunks are not recomputed (--overwrite starts over).", file=sys.stderr,
              flush=True)
        raise
    if main:
        if args.json:
            print(json.dumps(summary.to_dict(), indent=1, default=str))
        else:
            print(summary.line())
    return 0


def register(subparsers) -> None:
    from daedyn.cli._options import add_common_options, add_config_options

    p = subparsers.add_parser(
        "sweep", help="run a hyperparameter sweep from a TOML/JSON/YAML spec (see docs/sweep.md)",
        description="Run (or resume) a declarative sweep: chunked under a memory limit, sharded over the "
        "local devices, streamed to a zarr store readable with xarray. Re-running the same spec at the "
        "same path resumes; another spec at that path is refused.")
    p.add_argument("spec", nargs="?", default=None, help="spec file (.toml, .json, .yaml)")
    p.add_argument("assignments", nargs="*", default=[], metavar="NAME=V1,V2,...",
                   help="with --from: an option of the run and the values to sweep it over")
    p.add_argument("--from", dest="from_", default=None, metavar="RUN.toml",
                   help="sweep a training or tuning run instead of a spec: RUN.toml as `daedyn train|tune "
                   "--print-config` writes it, then NAME=V1,V2,... per swept option; each point is the "
                   "run itself, kept in <out>.points/ (rerunning resumes), gathered into --out "
                   "(.nc/.zarr/.json) with one dimension per swept option")
    p.add_argument("--dry-run", action="store_true", help="print the chunk plan and memory estimate only")
    p.add_argument("--allow-import", action="append", default=None, metavar="MODULE",
                   help="let the spec name a function of your own as 'MODULE:function' (repeatable); "
                   "without it a spec runs daedyn's entry points only, and imports nothing")
    p.add_argument("--out", default=None, help="output store (overrides 'path' in the spec)")
    p.add_argument("--max-memory", default=None, help="bound on results held in memory, e.g. 2GB, 512MiB")
    p.add_argument("--chunk-size", type=int, default=None, help="grid points per chunk")
    p.add_argument("--overwrite", action="store_true", help="replace an existing sweep store at the path")
    p.add_argument("--compression", choices=("auto", "lz4", "zstd", "none"), default="auto",
                   help="zarr compression of new stores (default auto: float outputs and the status "
                   "uncompressed, integer outputs blosc lz4 + shuffle)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (multi-host; auto-detects SLURM/TPU pods)")
    p.add_argument("--coordinator", default=None, help="with --distributed: coordinator host:port")
    p.add_argument("--num-processes", type=int, default=None, help="with --coordinator: process count")
    p.add_argument("--process-id", type=int, default=None, help="with --coordinator: this process's id")
    add_common_options(p)
    add_config_options(p)
    p.set_defaults(func=_run)
