"""The ``tinynas`` command: a click group whose sub-commands load only when used.

Each command lives in its own module under ``tinynas/cli/`` as a thin wrapper
over one library function. The table below names them, so ``tinynas --help``
lists every command without importing any of them (and never TensorFlow).
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from tinynas import __version__

# command name -> ("module:attribute", short help shown by `tinynas --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "profiles": ("tinynas.cli.profiles:profiles", "List, show and validate hardware profiles."),
    "space": ("tinynas.cli.space:space", "List search spaces, sample architectures, build one in Keras."),
    "estimate": ("tinynas.cli.estimate:estimate", "Cost of any int8 .tflite model on a board."),
    "datasets": ("tinynas.cli.datasets:datasets", "List and inspect datasets."),
    "train": ("tinynas.cli.train:train", "Train one architecture on a dataset."),
    "deploy": ("tinynas.cli.deploy:deploy", "Quantize to int8, check in TFLite Micro, write C arrays and firmware."),
    "firmware": ("tinynas.cli.firmware:firmware", "List firmware templates and generate a project."),
    "proxies": ("tinynas.cli.proxies:proxies", "Zero-cost proxies: list, score, benchmark."),
    "search": ("tinynas.cli.search:search", "Search for the most accurate architecture that fits a board."),
    "run": ("tinynas.cli.search:run", "Search, train, quantize, deploy and report: the whole pipeline."),
    "sweep": ("tinynas.cli.search:sweep", "The whole pipeline over many boards, sharing trained candidates."),
    "report": ("tinynas.cli.search:report", "Rebuild the report of a run or sweep."),
    "measure": ("tinynas.cli.measure:measure", "Measure latency on a board over serial."),
    "emulate": ("tinynas.cli.measure:emulate", "Serve a board emulator on a pseudo-terminal or TCP port."),
    "flash": ("tinynas.cli.measure:flash", "Build and flash a generated firmware project."),
    "calibrate": ("tinynas.cli.measure:calibrate", "Fit a board's latency model to measurements."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, short_help = COMMANDS[cmd_name]
        if ctx.resilient_parsing or "--help" in sys.argv[1:2]:
            # `tinynas --help` only needs the one-line help: do not import the module.
            return click.Command(cmd_name, short_help=short_help, help=short_help)
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return click.Command(cmd_name, short_help=short_help + " (not available in this build)",
                                 callback=_unavailable(cmd_name))
        return getattr(module, attr)


def _unavailable(name: str):
    def callback() -> None:
        raise click.ClickException(f"the '{name}' command is not available in this build of tinynas")

    return callback


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinynas")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """tinynas: find a neural network that fits your microcontroller, and ship it there."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console entry point: TinyNASError becomes a one-line message and exit code 1."""
    from tinynas.errors import TinyNASError

    try:
        # Without standalone mode click returns ``ctx.exit(code)``'s code instead of exiting.
        code = cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:  # click's form of Ctrl-C; a command may say what was kept
        said = str(exc.__cause__ or "")
        click.echo(f"interrupted: {said}" if said else "interrupted", err=True)
        sys.exit(130)
    except TinyNASError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int) and code != 0:
        sys.exit(code)


if __name__ == "__main__":
    main()
