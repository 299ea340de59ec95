"""valley: reasoning-distillation scaling studies on code, as a Dagster project."""

import os
import sys

__version__ = "0.1.0"

# pyarrow's allocator (mimalloc) keeps pages it has freed for later reuse, and the pool build reads 10 GB of traces
# through it batch by batch: with the default delay the build's peak memory grew with the data (a 20,000-row shard
# 0.42 GiB, a 2,000-row one 0.34 GiB); returning freed pages at once keeps it flat (0.34 / 0.26 GiB) at no measured
# cost in time. mimalloc reads the option when pyarrow loads, so it must be set before that; worker processes
# inherit it. A value the user set wins.
if "pyarrow" not in sys.modules:
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
