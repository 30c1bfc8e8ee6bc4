"""Run a script as __main__ and print its own peak resident memory at exit: python -m benchmarks.peak_rss SCRIPT ARGS..."""

import atexit
import resource
import runpy
import sys

atexit.register(
    lambda: print(f"PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}", flush=True)
)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
