import re
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer, EvalPrediction

from common.config import ModelConfig
from common.errors import UserError
from common.model import load as modeling
from common.train.trainer import EpochSeededLengthGroupedSampler, RecipeTrainer, length_grouped_indices


def test_length_grouped_order_depends_only_on_seed_and_epoch():
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = [5, 30, 7, 12, 40, 3, 22, 9] * 4

    def order(epoch, noise):
        torch.manual_seed(noise)  # the global stream must not matter (it is not saved in a checkpoint)
        sampler = EpochSeededLengthGroupedSampler(LengthGroupedSampler(4, lengths=lengths).lengths, 4, seed=42)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, noise=0) == order(1, noise=123)
    assert order(0, noise=0) != order(1, noise=0)
    assert sorted(order(1, noise=0)) == list(range(len(lengths)))


def padding(indices, lengths, batch_size):
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - sum(lengths) / padded


def snippet_lengths(n=8530):
    """Token counts shaped like the Rotten Tomatoes snippets' (median ~25, a long tail cut at 64)."""
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(n, generator=generator) * 0.5 + 3.2).exp().clamp(3, 64).round().int().tolist()


@pytest.mark.parametrize("batch_size", [16, 32])
def test_grouping_at_the_recipes_batch_sizes_is_transformers_own(batch_size):
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = snippet_lengths()
    ours = length_grouped_indices(lengths, batch_size, torch.Generator().manual_seed(7))
    theirs = get_length_grouped_indices(lengths, batch_size, generator=torch.Generator().manual_seed(7))
    assert ours == theirs


def test_grouping_stays_tight_at_a_large_batch():
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = snippet_lengths()
    ours = length_grouped_indices(lengths, 512, torch.Generator().manual_seed(7))
    theirs = get_length_grouped_indices(lengths, 512, generator=torch.Generator().manual_seed(7))
    assert sorted(ours) == list(range(len(lengths)))
    assert lengths[ours[0]] == max(lengths)  # the longest batch first: out of memory at once, not mid-epoch
    assert padding(ours, lengths, 512) < 0.6 * padding(theirs, lengths, 512)
    # the batches of a group are shuffled: the epoch does not run from the longest texts to the shortest
    batch_maxima = [max(lengths[i] for i in ours[s : s + 512]) for s in range(512, 8192, 512)]
    assert batch_maxima != sorted(batch_maxima, reverse=True)


def test_a_nan_loss_stops_when_logged_naming_the_steps_since_the_last_finite_one():
    """The check reads the logged loss: no per-step read-back that would make the host wait for the GPU."""
    trainer = RecipeTrainer.__new__(RecipeTrainer)  # no model needed: only the check runs
    trainer.state, trainer.args = SimpleNamespace(global_step=50), SimpleNamespace(learning_rate=1e-3)
    trainer._finite_through_step = 25
    with pytest.raises(
        UserError, match=r"the training loss became nan between steps 26 and 50; lower --lr \(now 0.001\)"
    ):
        RecipeTrainer.log(trainer, {"loss": float("nan")})
    trainer._finite_through_step = 49
    with pytest.raises(UserError, match="became inf at step 50"):
        RecipeTrainer.log(trainer, {"train_loss": float("inf")})


@pytest.mark.parametrize("compile_model", [False, True])
def test_under_compile_training_drops_the_last_smaller_batch_and_evaluation_keeps_it(
    tiny_bert, tmp_path, compile_model
):
    """A smaller last batch is a new shape, compiled again (a 95 s stall on an H100); uncompiled runs keep it."""
    import datasets
    from transformers import TrainingArguments

    rows = datasets.Dataset.from_dict({"input_ids": [[101, 7, 102]] * 10, "labels": [0, 1] * 5})
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, per_device_eval_batch_size=4, use_cpu=True,
        torch_compile=compile_model, report_to="none",
    )  # fmt: skip
    model = modeling.load_classifier(
        ModelConfig(model=str(tiny_bert)), ["a", "b"], AutoTokenizer.from_pretrained(tiny_bert)
    )
    trainer = RecipeTrainer(model=model, args=args, train_dataset=rows, eval_dataset=rows)
    assert len(trainer.get_train_dataloader()) == (2 if compile_model else 3)
    assert len(trainer.get_eval_dataloader()) == 3 and not args.dataloader_drop_last


def test_training_logs_are_lines_of_numbers(tiny_bert, reviews_csv, tmp_path, capfd):
    from common.run import from_argv
    from recipes import bert_classification

    from_argv(
        bert_classification.main,
        bert_classification.DEFAULTS,
        ["--model", str(tiny_bert), "--train-file", str(reviews_csv), "--batch-size", "4", "--epochs", "1",
         "--precision", "fp32", "--logging-steps", "1", "--output-dir", str(tmp_path / "out")],
    )  # fmt: skip
    printed = capfd.readouterr()
    lines = [line for line in (printed.out + printed.err).replace("\r", "\n").splitlines() if "step 1/" in line]
    assert lines and re.search(r"step 1/\d+  loss \d\.\d+ grad_norm [\d.e+-]+ learning_rate [\d.e+-]+ epoch ", lines[0])
    assert "'loss': '" not in printed.out + printed.err  # not a dict of strings


def test_resuming_on_other_training_data_is_refused(tmp_path):
    import datasets

    from common.train import checkpoints

    rows = {"input_ids": [[1, 2, 3], [4, 5], [6]] * 40, "labels": [0, 1, 1] * 40}
    started = checkpoints.data_fingerprint(datasets.Dataset.from_dict(rows))
    (tmp_path / checkpoints.DATA).write_text(__import__("json").dumps(started))
    same = checkpoints.data_fingerprint(datasets.Dataset.from_dict(rows))
    checkpoints.check_same_data(tmp_path, same)  # the same data: resumed
    flipped = checkpoints.data_fingerprint(datasets.Dataset.from_dict({**rows, "labels": [1, 0, 0] * 40}))
    with pytest.raises(UserError, match="the training data differ from those the checkpoint was trained on \\(other"):
        checkpoints.check_same_data(tmp_path, flipped)
    fewer = checkpoints.data_fingerprint(datasets.Dataset.from_dict({k: v[:40] for k, v in rows.items()}))
    with pytest.raises(UserError, match="\\(120 rows then, 40 now\\)"):
        checkpoints.check_same_data(tmp_path, fewer)
    checkpoints.check_same_data(tmp_path / "older", fewer)  # a checkpoint without data.json: nothing to compare


def test_weights_gone_nan_are_neither_evaluated_nor_saved_and_the_run_says_since_when():
    from transformers import TrainerControl

    from common.train.trainer import FiniteWeights

    model = torch.nn.Linear(2, 2)
    check, args = FiniteWeights(), SimpleNamespace(learning_rate=5e-3)
    quiet = TrainerControl()  # neither an evaluation nor a save after this step: nothing is read back
    check.on_step_end(args, SimpleNamespace(global_step=10), TrainerControl(should_evaluate=True), model=model)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    check.on_step_end(args, SimpleNamespace(global_step=15), quiet, model=model)
    with pytest.raises(
        UserError, match=r"weights became NaN or inf .* between steps 11 and 20; lower --lr \(now 0.005\)"
    ):
        check.on_step_end(args, SimpleNamespace(global_step=20), TrainerControl(should_save=True), model=model)


def test_windows_are_validated_per_document_as_the_test_predictions_are(tiny_bert, tmp_path):
    """evaluate() on long-text windows (a `document` column) scores documents, through Trainer's own evaluation:
    its accuracy equals the one computed from predict_in_order's per-document logits."""
    import datasets
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, TrainingArguments

    from common.evaluate import classification_metrics

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    texts = [f"window {i} of some longer review with words {i * 7}" for i in range(24)]
    rows = tokenizer(texts, truncation=True, max_length=16)
    windows = datasets.Dataset.from_dict(
        {**rows, "labels": [(i // 3) % 2 for i in range(24)], "document": [i // 3 for i in range(24)]}
    )
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    args = TrainingArguments(tmp_path, per_device_eval_batch_size=5, report_to=[], use_cpu=True,
                             train_sampling_strategy="group_by_length")  # fmt: skip
    trainer = RecipeTrainer(model=model, args=args, eval_dataset=windows, compute_metrics=classification_metrics,
                            data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip
    validated = trainer.evaluate()
    tested = trainer.predict_in_order(windows)
    direct = classification_metrics(EvalPrediction(tested.predictions, tested.label_ids))
    assert (validated["eval_windows"], validated["eval_documents"]) == (24, 8)
    assert validated["eval_accuracy"] == pytest.approx(direct["accuracy"]) and len(tested.predictions) == 8
    assert validated["eval_loss"] == pytest.approx(tested.metrics["test_loss"])  # the loss: over windows, both
