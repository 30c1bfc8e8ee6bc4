"""common.evaluate.caveats: the doubts about a classifier's test numbers, each said when it applies and only then."""

import math

import pytest

from common.evaluate.caveats import accuracy_interval, class_balance_loss, classification_caveats

LABELS = ["billing", "bug", "other"]
BALANCED = {"train": [40, 40, 40], "validation": [10, 10, 10], "test": [300, 300, 300]}
GOOD_MATRIX = [[250, 30, 20], [20, 260, 20], [25, 25, 250]]  # 900 test examples, accuracy 0.844


def test_the_wilson_interval_matches_values_worked_by_hand():
    # 8 of 10: p 0.8, z 1.96 -> centre 0.7167, half 0.2262 (the textbook example's numbers)
    assert accuracy_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    low, high = accuracy_interval(1275, 1275)
    assert high == 1.0 and low == pytest.approx(0.997, abs=1e-3)  # never above 1, unlike p +- z*se
    assert accuracy_interval(0, 0) == (0.0, 1.0)


def test_the_class_balance_loss_is_the_entropy_of_the_training_frequencies():
    assert class_balance_loss([40, 40, 40], [10, 10, 10]) == pytest.approx(math.log(3))
    # 3:1 in training, scored on a 1:1 split: -(ln 0.75 + ln 0.25) / 2
    assert class_balance_loss([300, 100], [50, 50]) == pytest.approx(-(math.log(0.75) + math.log(0.25)) / 2)


def test_a_run_that_learned_has_no_caveat():
    history = [{"loss": 1.0, "step": 25}, {"eval_loss": 0.45, "step": 400}]
    assert classification_caveats(BALANCED, GOOD_MATRIX, LABELS, history, steps=400) == []


def test_the_150_ticket_run_of_the_issue_gets_every_caveat():
    # 4 optimizer steps, validation loss 1.056 against ln 3 = 1.099, 30 test tickets, 24 right
    counts = {"train": [40, 40, 40], "validation": [5, 5, 5], "test": [10, 10, 10]}
    matrix = [[8, 1, 1], [1, 8, 1], [1, 1, 8]]
    caveats = classification_caveats(counts, matrix, LABELS, [{"eval_loss": 1.056, "step": 4}], steps=4)
    assert len(caveats) == 3
    assert caveats[0].startswith("Only 4 optimizer steps")
    assert "validation loss (1.056) is close to 1.099" in caveats[1]
    assert "The test split has 30 examples: its accuracy 0.800 is known only to within 0.627-0.905" in caveats[2]


def test_one_class_predicted_for_everything_is_said():
    matrix = [[300, 0, 0], [300, 0, 0], [300, 0, 0]]
    caveats = classification_caveats(BALANCED, matrix, LABELS, [{"eval_loss": 0.4}], steps=400)
    assert caveats == [
        "Every test example was predicted 'billing': the accuracy is that class's share of the test split, and "
        "precision/recall/F1 of the other classes are 0 by definition, not by measurement."
    ]


def test_a_causal_lm_run_is_doubted_when_it_did_not_help_overfit_or_took_few_steps():
    from common.evaluate.causal_lm import lm_caveats

    history = [{"eval_loss": 3.10, "step": 20}, {"eval_loss": 3.02, "step": 40}, {"eval_loss": 3.20, "step": 60}]
    said = lm_caveats({"test_perplexity": 46.0}, {"test_perplexity": 45.2}, history, steps=8)
    assert said[0].startswith("Only 8 optimizer steps") and "More text (--max-train-samples)" in said[0]
    assert "did not lower the held-out perplexity (45.20 before, 46.00 after)" in said[1]
    assert "rose from 3.0200 (step 40) to 3.2000 at the end" in said[2]
    # the causal LM's default run: 20 steps, perplexity 45.2 -> 31.3, one evaluation: nothing to doubt
    assert lm_caveats({"test_perplexity": 31.3}, {"test_perplexity": 45.2}, history[:1], steps=20) == []
