"""What should make a reader doubt a classifier's test numbers, said in words: a model that learned little beyond
the class balance, too few optimizer steps, one class predicted for everything, a test split too small for its
accuracy to mean much. report.md shows these above the metrics and the run logs them as warnings.

A 150-row run of 4 steps had validation loss 1.056 (1.099 for a uniform guess), every probability 0.33-0.37,
and a report that showed test accuracy 0.80 with no word of doubt: this module is what says it now.
"""

from __future__ import annotations

import math

import numpy as np

from common.config import TrainingConfig

# a validation loss above this share of the class-balance loss means the model learned little beyond the balance
NEAR_CHANCE = 0.9
# a test accuracy whose 95% interval is wider than +- this is flagged as resting on too few examples
WIDE_INTERVAL = 0.05


def accuracy_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of an accuracy of `correct` out of `n`; better than the normal
    approximation near 0 or 1 and for small n."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def matrix_interval(matrix: list[list[int]]) -> tuple[float, float]:
    """The 95% interval of the accuracy a confusion matrix shows (its diagonal out of its total)."""
    counts = np.asarray(matrix)
    return accuracy_interval(int(np.trace(counts)), int(counts.sum()))


def class_balance_loss(train_counts: list[int], eval_counts: list[int]) -> float:
    """The cross-entropy on the evaluated split of a model that always predicts the training class frequencies:
    what a model that learned nothing from the texts scores."""
    train, evaluated = np.asarray(train_counts, float), np.asarray(eval_counts, float)
    prior = np.clip(train / train.sum(), 1e-12, None)
    return float(-(evaluated * np.log(prior)).sum() / max(evaluated.sum(), 1))


def too_few_steps(steps: int, enough: int, fixes: str, after: str = "") -> list[str]:
    """The caveat of a run of fewer than `enough` optimizer steps, naming `fixes` (the flags that give more);
    none for a run of enough steps (or of none: a resumed run that had finished)."""
    if not 0 < steps < enough:
        return []
    return [
        f"Only {steps} optimizer steps: too few for the model to learn much. {fixes} gives {enough} or more{after}."
    ]


def classification_caveats(
    class_counts: dict, matrix: list[list[int]], label_names: list[str], history: list[dict], steps: int
) -> list[str]:
    """Each doubt about the test numbers as one sentence that says what to do; empty when there is none."""
    caveats = too_few_steps(
        steps,
        TrainingConfig.enough_steps,
        "A smaller --batch-size or more --epochs",
        " (the training log names the values)",
    )
    last_eval = next((h["eval_loss"] for h in reversed(history) if "eval_loss" in h), None)
    if last_eval is not None and "validation" in class_counts:
        balance = class_balance_loss(class_counts["train"], class_counts["validation"])
        if last_eval > NEAR_CHANCE * balance:
            caveats.append(
                f"The validation loss ({last_eval:.3f}) is close to {balance:.3f}, the loss of always predicting the "
                f"training class frequencies: the model learned little from the texts, whatever the accuracy says. "
                f"Train longer (more steps, see above), or check that the labels follow from the texts."
            )
    predicted = [sum(column) for column in zip(*matrix)]
    if sum(1 for count in predicted if count) == 1 and len(label_names) > 1:
        only = label_names[next(i for i, count in enumerate(predicted) if count)]
        caveats.append(
            f"Every test example was predicted '{only}': the accuracy is that class's share of the test split, and "
            f"precision/recall/F1 of the other classes are 0 by definition, not by measurement."
        )
    n, correct = int(np.asarray(matrix).sum()), int(np.trace(np.asarray(matrix)))
    low, high = matrix_interval(matrix)
    if (high - low) / 2 > WIDE_INTERVAL:
        caveats.append(
            f"The test split has {n} examples: its accuracy {correct / max(n, 1):.3f} is known only to within "
            f"{low:.3f}-{high:.3f} (95% interval). Differences between runs smaller than that mean little; a larger "
            f"--test-file (or --kfold K) narrows it."
        )
    return caveats
