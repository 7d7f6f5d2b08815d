"""Options and argument types the subcommands share (private to ``daedyn.cli``): --json, --device,
--x64, --no-cache, --config, the dataset options, comma lists and seeds."""

from __future__ import annotations

import argparse

__all__ = ["add_common_options", "add_dataset_options", "add_config_options", "float_list", "seed_int",
           "apply_common_options"]


def add_config_options(p: argparse.ArgumentParser) -> None:
    """--config FILE and --print-config (see :func:`daedyn.cli._config.resolve`)."""
    p.add_argument("--config", default=None, metavar="FILE.toml",
                   help="read options from a TOML/JSON/YAML file (keys: option names, e.g. save_every "
                   "= 50); options on the command line override it")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved options as TOML (usable as --config) and exit")


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every subcommand shares: --json, --device, --x64, --no-cache."""
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--no-cache", action="store_true",
                   help="neither read nor write the on-disk spectrum cache ($DAEDYN_CACHE, else "
                   "~/.cache/daedyn; see `daedyn cache`)")
    p.add_argument("--device", choices=("cpu", "gpu", "tpu"), default=None,
                   help="JAX platform to run on (default: JAX's default backend)")
    p.add_argument("--x64", action="store_true", help="compute in float64")


def float_list(text: str) -> list[float]:
    """``"0,1,5"`` -> [0.0, 1.0, 5.0] (an argparse ``type=``; errors become one-line usage errors)."""
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected at least one number; got {text!r}")
    try:
        return [float(v) for v in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers; got {text!r}") from None


def seed_int(text: str) -> int:
    """A PRNG seed: an integer that fits in int64 (an argparse ``type=``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
    if not -2**63 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must fit in a 64-bit integer; got {text}")
    return value


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """--dataset NAME|FILE.npy, --data-dir, --n, --subset, --subset-seed: the arguments of
    :func:`daedyn.data.load_dataset` (pass them with ``load_dataset(args.dataset, n=args.n,
    data_dir=args.data_dir, subset=args.subset, seed=args.subset_seed)``)."""
    p.add_argument("--dataset", default="mnist5k", metavar="NAME|FILE.npy",
                   help="dataset name for daedyn.data.load (mnist5k, mnist, fashion_mnist, cifar10) "
                   "or a local .npy file of shape (N, D) (default mnist5k)")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="folder with local dataset files")
    p.add_argument("--n", type=int, default=None, help="samples to load (default all)")
    p.add_argument("--subset", choices=("stratified", "random", "first"), default="stratified",
                   help="how --n samples are drawn: stratified (default: every class in proportion, "
                   "a plain random draw without labels), random, or first (the first N rows; mnist5k is "
                   "sorted by class)")
    p.add_argument("--subset-seed", type=seed_int, default=0, metavar="SEED",
                   help="seed of a stratified or random --subset (default 0)")


def apply_common_options(args) -> None:
    """Apply --device and --x64 to JAX's configuration.

    Raises:
      ValueError: naming ``--device`` when this machine has no such platform (JAX's platform
        setting is restored first).
    """
    import jax

    if getattr(args, "device", None):
        old = jax.config.jax_platforms
        jax.config.update("jax_platforms", args.device)
        try:
            jax.devices(args.device)
        except RuntimeError as err:
            jax.config.update("jax_platforms", old)
            raise ValueError(f"--device {args.device}: {str(err).splitlines()[0]}") from None
    if getattr(args, "x64", False):
        jax.config.update("jax_enable_x64", True)
