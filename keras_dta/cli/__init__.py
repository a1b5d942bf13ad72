"""Command-line programs (absl flags): `keras-dta-fit` (`keras_dta.cli.fit`),
`keras-dta-export` (`keras_dta.cli.export`) and `keras-dta-convert` (`keras_dta.cli.convert`)."""
