"""Command-line programs (absl flags): `keras-dta-fit` (`keras_dta.cli.fit`),
`keras-dta-export` (`keras_dta.cli.export`) and `keras-dta-convert` (`keras_dta.cli.convert`)."""

import sys

from absl import app, flags


def run_main(main, module_name):
    """`absl.app.run(main)`, with `--help` listing the flags of `module_name`.

    absl's `--help` lists the flags of the program's main module (`sys.argv[0]`); here the
    flags live in a `keras_dta.cli` module that a shim or a console script runs. A usage
    error raised by `main` is one line and a pointer to `--help`, not the whole help first.
    """
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)

    def main_with_short_usage_errors(argv):
        try:
            return main(argv)
        except app.UsageError as error:
            sys.stderr.write(f"Error: {error}\nPass --help to see the flags.\n")
            return error.exitcode

    app.run(main_with_short_usage_errors)
