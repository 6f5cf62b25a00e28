"""The command line: parse options, call the library, render the result. Nothing computes here."""
