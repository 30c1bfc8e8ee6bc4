"""Token attributions of a saved classifier's predictions, as an HTML page: which tokens pushed each prediction
(integrated gradients, common.evaluate.attributions), with no training run needed.

  python -m common.serve.explain outputs/bert_classification                 # its test errors (errors.csv) first
  python -m common.serve.explain outputs/bert_classification --input reviews.csv --limit 50 --output why.html

Input: the run's errors.csv by default (the wrong test predictions, most confident first), or any table or .txt
file as `common.serve.predict` reads it; a `label` column (or errors.csv's `true_label`) adds right/wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.config.cli import RecipeParser, positive_number
from common.errors import UserError
from common.runtime import run_cli


def main(argv=None) -> None:
    parser = RecipeParser(
        prog="python -m common.serve.explain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a classifier's output folder")
    parser.add_argument("--input", help="csv/jsonl/json/parquet/txt file (default: the run's errors.csv)")
    parser.add_argument("--limit", type=positive_number(int), default=20, help="explain the first N rows")
    parser.add_argument("--output", default="explain.html", help="the HTML page to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    args = parser.parse_args(argv)
    if not args.output.endswith(".html"):
        parser.error(f"--output '{args.output}' must end in .html")

    from common.evaluate.attributions import token_attributions
    from common.report.html import explain_html
    from common.serve.predict import Predictor, check_output_file, read_inputs, write_text
    from common.tasks.classification import labels

    check_output_file(args.output, args.overwrite, ".html")
    source = args.input or str(Path(args.model) / "errors.csv")
    if args.input is None and not Path(source).is_file():
        raise UserError(f"'{args.model}' has no errors.csv (a run with no test errors?); give rows with --input")
    predictor = Predictor(args.model, batch_size=1)
    if not type(predictor.model).__name__.endswith("ForSequenceClassification"):
        raise UserError(f"'{args.model}' is not a classifier; token attributions explain a classifier's labels")
    columns = predictor.task.input_columns(predictor.run_config)
    frame = read_inputs(source, columns).head(args.limit)
    truth = next((c for c in ("true_label", predictor.run_config.get("label_column")) if c and c in frame), None)
    names = labels(predictor)
    pages = []
    for _, row in frame.iterrows():
        texts = tuple(str(row[c]) for c in columns)
        explained = token_attributions(predictor.model, predictor.tokenizer, texts, predictor.device, names)
        pages.append({**explained, "true": str(row[truth]) if truth else None})
    write_text(explain_html(pages), args.output)
    print(f"wrote the attributions of {len(pages)} prediction(s) to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
