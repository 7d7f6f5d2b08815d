"""Options and argument types the subcommands share (private to ``daedyn.cli``): --json, --device,
--x64, --no-cache, --config, the dataset options, comma lists and seeds."""

from __future__ import annotations

import argparse

__all__ = ["add_common_options", "add_dataset_options", "add_config_options", "float_list", "seed_int",
           "apply_common_options", "add_deprecated", "Deprecated", "eigvals_arg", "load_eigvals"]


class Deprecated(argparse.Action):
    """An old spelling of an option (docs/glossary.md): stores into the new option's ``dest`` (through
    ``convert``, when the value changed form) and says once on stderr that it is deprecated and what
    to write instead. Hidden from ``--help``; removed one release after the rename."""

    _said: set = set()

    def __init__(self, option_strings, dest, new: str = "", convert=None, **kwargs):
        kwargs.setdefault("default", argparse.SUPPRESS)  # the new option's default stands
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.convert = new, convert

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        if self.nargs == 0:
            values = self.const
        if self.convert is not None:
            try:
                values = self.convert(values)
            except ValueError as err:
                parser.error(f"{option_string}: {err}")
        setattr(namespace, self.dest, values)
        note = (parser.prog, option_string)
        if note not in Deprecated._said:
            Deprecated._said.add(note)
            print(f"{parser.prog}: deprecated: {option_string} is now {self.new} (the old spelling "
                  "works until the next release; docs/glossary.md)", file=sys.stderr, flush=True)


def add_deprecated(p: argparse.ArgumentParser, old: str, new: str, *, dest: str | None = None,
                   convert=None, **kwargs) -> None:
    """Register ``old`` as a hidden, deprecated spelling of the option ``new`` (same ``dest``)."""
    dest = dest or new.lstrip("-").replace("-", "_")
    p.add_argument(old, dest=dest, action=Deprecated, new=new, convert=convert, help=argparse.SUPPRESS,
                   **kwargs)


def eigvals_arg(text: str):
    """``--eigvals``: a comma list of numbers, or a ``.npy`` file of a 1-D array (read by
    :func:`load_eigvals` when the command runs); an argparse ``type=``."""
    if text.strip().lower().endswith(".npy"):
        return text
    return float_list(text)


def load_eigvals(option: str, value):
    """The eigenvalues of :func:`eigvals_arg`'s value as a float64 array (D,), descending order kept as
    given. Raises ValueError naming ``option`` for a file without a 1-D array or a negative value."""
    import numpy as np

    from daedyn._checks import check_range

    where = option
    if isinstance(value, str):
        from daedyn.data import read_npy

        where = f"{option} {value}"
        lam = np.asarray(read_npy(value), np.float64)
    else:
        lam = np.asarray(value, np.float64)
    if lam.ndim != 1 or lam.size < 1:
        raise ValueError(f"{where}: must hold a 1-D array (D,); got shape {lam.shape}")
    check_range(f"{where}: eigenvalues", lam, 0.0)
    return lam


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
                   help="neither read nor write the on-disk cache of spectra and compiled programs "
                   "($DAEDYN_CACHE, else ~/.cache/daedyn; see `daedyn cache`)")
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
