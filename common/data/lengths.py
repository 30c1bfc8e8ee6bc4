"""--max-length from the data: `auto` (the default) measures the training texts in tokens and takes the length
that keeps 199 in 200 of them whole; an explicit length that cuts more than a fifth of them gets a hint.

Why a high share: the collator pads each batch to its own longest example and batches are grouped by length, so
a longer limit costs only the long texts' extra tokens, while a short one silently drops what long texts say
late. A user's news csv at the old fixed 64 tokens had every article cut and landed below TF-IDF.

On a CPU auto takes at most 256 tokens. On IMDB reviews (MiniLM, 1 epoch, benchmarks/results/long_text.md), 512
tokens on 1,000 reviews took 2.8x the whole run of 256 and scored lower (0.714 against 0.731); 256 with --long-text
head-tail, which keeps each review's ending, scored 0.776 at the same cost; and the time 512 took bought more as
rows than as length (256 + head-tail on 2,000 reviews: 0.838 in two thirds of it). On a GPU: at most 512.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from common.config import ClassificationData
from common.data.long_text import CHARS_PER_TOKEN
from common.runtime import on_gpu

logger = logging.getLogger(__name__)

AUTO_KEEPS_WHOLE = 0.995  # share of the training texts that `auto` keeps whole
# the most auto takes (beyond it, give --max-length yourself): attention's cost grows with the square of the length,
# and on a CPU 512 tokens did not pay for their time (see above)
AUTO_AT_MOST = {"gpu": 512, "cpu": 256}
CUT_HINT = 0.2  # an explicit --max-length that cuts more than this share of the training texts gets a hint
MEASURED = 5000  # texts measured at most (a seeded sample of larger sets)


def token_lengths(frame: pd.DataFrame, tokenizer, text_columns: list[str], up_to: int) -> np.ndarray:
    """Each row's length in tokens, special tokens included (a pair: both texts), counted up to `up_to` + 1."""
    if len(frame) > MEASURED:
        frame = frame.sample(n=MEASURED, random_state=0)
    # cut first, as the datasets are (long_text.cut_long_texts): a 50 MB cell would take minutes to tokenize
    texts = [[str(t)[: (up_to + 1) * CHARS_PER_TOKEN] for t in frame[c]] for c in text_columns]
    encoded = tokenizer(*texts, truncation=True, max_length=up_to + 1)["input_ids"]
    return np.array([len(ids) for ids in encoded])


def fit_max_length(data: ClassificationData, train: pd.DataFrame, tokenizer, positions: int | None) -> int:
    """The --max-length to use: `auto` -> the length that keeps AUTO_KEEPS_WHOLE of the training texts whole,
    rounded up to a multiple of 8 and at most AUTO_AT_MOST on this hardware and `positions` (what the model
    reads); an explicit length is kept, with one warning line when it cuts more than CUT_HINT of the training
    texts."""
    hardware = "gpu" if on_gpu() else "cpu"
    most = AUTO_AT_MOST[hardware]
    max_length, limit = data.max_length, min(positions or most, most)
    reach = min(positions or AUTO_AT_MOST["gpu"], AUTO_AT_MOST["gpu"])  # the longest a hint names, on any hardware
    explicit = isinstance(max_length, int)
    lengths = token_lengths(train, tokenizer, data.text_column, max(reach, max_length if explicit else 0))
    fits = 8 * math.ceil(float(np.quantile(lengths, AUTO_KEEPS_WHOLE, method="higher")) / 8)
    chosen = min(fits, limit)
    read_whole = data.long_text != "truncate"  # head-tail and sliding-window read past the length: none is lost
    if explicit:
        cut = int((lengths > max_length).sum())
        if cut > CUT_HINT * len(lengths) and not read_whole:
            fix = "--long-text head-tail or sliding-window read past it"
            whole_at = min(fits, reach)
            if whole_at > max_length:
                named = f"--max-length {whole_at}" + (" (or auto)" if whole_at == chosen else "")
                fix = f"{named} keeps {(lengths <= whole_at).mean():.0%} whole; {fix}"
            logger.warning(
                "--max-length %d cuts %d of %d training texts (%.0f%%); %s",
                *(max_length, cut, len(lengths), 100 * cut / len(lengths), fix),
            )
        return max_length
    whole = 100 * float((lengths <= chosen).mean())
    if fits <= limit:
        logger.info("--max-length auto: %d tokens, which keeps %.1f%% of the training texts whole", chosen, whole)
        return chosen
    if read_whole:
        logger.info(
            "--max-length auto: %d tokens; --long-text %s reads past it in the %.0f%% of training texts longer",
            *(chosen, data.long_text, 100 - whole),
        )
        return chosen
    if chosen == positions:
        why = "the most this model reads"
    elif hardware == "cpu":
        why = (
            f"the most auto takes on a CPU ({AUTO_AT_MOST['gpu']} cost 2.8x the time and scored lower on IMDB reviews: "
            f"benchmarks/results/long_text.md; give --max-length {AUTO_AT_MOST['gpu']} to take it anyway)"
        )
    else:
        why = f"the most auto takes (the model reads {positions})"
    logger.warning(
        "--max-length auto: %d tokens, %s; %.0f%% of the training texts fit whole and the rest are cut "
        "(--long-text head-tail keeps their endings too, for no more time; sliding-window reads them whole)",
        *(chosen, why, whole),
    )
    return chosen
