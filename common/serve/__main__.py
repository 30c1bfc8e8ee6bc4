"""`python -m common.serve OUTPUT_DIR`: the HTTP server of common.serve.http."""

from common.runtime import run_cli
from common.serve.http import main

run_cli(main)
