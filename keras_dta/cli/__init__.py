"""Command-line programs (absl flags): `keras-dta-fit` (`keras_dta.cli.fit`) and
`keras-dta-convert` (`keras_dta.cli.convert`)."""
