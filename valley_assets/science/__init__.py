"""Pure functions for the science: no Dagster, no I/O. Tested on their own."""
