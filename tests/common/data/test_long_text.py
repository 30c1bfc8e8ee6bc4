import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, TrainingArguments

from common.config import ModelConfig
from common.data import long_text
from common.data import tokens as tokenization
from common.errors import UserError
from common.evaluate.metrics import classification_metrics
from common.model import load as modeling
from common.train import trainer as training

WORDS = [f"word{i}" for i in range(300)]


@pytest.fixture(scope="module")
def bert_tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def test_sliding_windows_cover_every_token_of_every_document(bert_tokenizer):
    frame = pd.DataFrame({"text": [" ".join(WORDS[:200]), "short text", " ".join(WORDS[50:130])], "labels": [1, 0, 1]})
    ds = long_text.window_dataset(frame, bert_tokenizer, "text", max_length=32, stride=8)
    document = np.asarray(ds["document"])
    assert sorted(set(document)) == [0, 1, 2] and (document == 0).sum() > 5
    specials = set(bert_tokenizer.all_special_ids)
    for i, text in enumerate(frame["text"]):
        full = bert_tokenizer(text, add_special_tokens=False)["input_ids"]
        windows = [[t for t in ids if t not in specials] for ids, d in zip(ds["input_ids"], document) if d == i]
        assert all(len(ids) <= 32 for ids in ds["input_ids"])
        rebuilt = list(windows[0])
        for window in windows[1:]:
            assert window[:8] == rebuilt[-8:]  # neighbours overlap by the stride
            rebuilt += window[8:]
        assert rebuilt == full  # together the windows hold every token, in order
    assert ds["labels"] == [frame["labels"][d] for d in document]


def test_head_tail_keeps_the_start_and_the_end(bert_tokenizer):
    frame = pd.DataFrame({"text": [" ".join(WORDS[:100])], "labels": [0]})
    ids = long_text.head_tail_dataset(frame, bert_tokenizer, "text", max_length=42)["input_ids"][0]
    full = bert_tokenizer(frame["text"][0], add_special_tokens=False)["input_ids"]
    assert len(ids) == 42 and ids[1:11] == full[:10] and ids[11:-1] == full[-30:]  # [CLS] head 10, tail 30 [SEP]


def test_window_predictions_are_averaged_per_document():
    logits = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [5.0, 1.0]])
    document = np.array([0, 0, 1, 2])
    assert long_text.mean_by_document(logits, document).tolist() == [[0.5, 1.5], [2.0, 2.0], [5.0, 1.0]]
    assert long_text.first_by_document(np.array([1, 1, 0, 1]), document).tolist() == [1, 0, 1]


def test_recipe_trainer_evaluates_windows_per_document(tiny_bert, bert_tokenizer, tmp_path):
    frame = pd.DataFrame({"text": [" ".join(WORDS[:150]), "a fine film", " ".join(WORDS[20:90])], "labels": [1, 0, 1]})
    windows = long_text.window_dataset(frame, bert_tokenizer, "text", max_length=24, stride=4)
    model = modeling.load_classifier(ModelConfig(model=str(tiny_bert)), ["a", "b"], bert_tokenizer)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        per_device_eval_batch_size=4,
        train_sampling_strategy="group_by_length",
        disable_tqdm=True,
    )
    seen = []

    def metrics_spy(eval_pred):
        seen.append(eval_pred)
        return classification_metrics(eval_pred)

    trainer = training.RecipeTrainer(
        model=model, args=args, compute_metrics=metrics_spy, data_collator=tokenization.padding_collator(bert_tokenizer)
    )
    metrics = trainer.evaluate(windows, metric_key_prefix="test")
    assert metrics["test_documents"] == 3 and metrics["test_windows"] == len(windows) > 3
    per_document = seen[-1]  # what the metrics were computed on
    assert per_document.label_ids.tolist() == [1, 0, 1]
    model.eval()
    with torch.no_grad():  # the same numbers by hand: every window alone, then the mean per document
        logits = np.stack([model(input_ids=torch.tensor([ids])).logits[0].numpy() for ids in windows["input_ids"]])
    by_hand = long_text.mean_by_document(logits, np.asarray(windows["document"]))
    assert np.allclose(per_document.predictions, by_hand, atol=1e-5)
    assert metrics["test_accuracy"] == classification_metrics(per_document)["accuracy"]


def test_bad_long_text_settings_are_clear_errors(bert_tokenizer):
    frame = pd.DataFrame({"a": ["x"], "b": ["y"]})
    with pytest.raises(UserError, match="--stride 30 must be smaller than --max-length 32"):
        long_text.window_dataset(frame, bert_tokenizer, "a", 32, 30)
    with pytest.raises(UserError, match="works on one text column"):
        long_text.long_text_dataset(frame, bert_tokenizer, ["a", "b"], 32, "sliding-window", 8)


def test_a_huge_cell_is_cut_before_tokenizing_to_the_same_tokens(bert_tokenizer):
    huge = " ".join(WORDS) * 200  # ~560k characters
    frame = pd.DataFrame({"text": [huge, "short"], "labels": [1, 0]})
    cut = long_text.cut_long_texts(frame["text"].tolist(), max_length=32)
    assert len(cut[0]) == 32 * long_text.CHARS_PER_TOKEN and cut[1] == "short"
    whole = bert_tokenizer(frame["text"].tolist(), truncation=True, max_length=32)["input_ids"]
    assert tokenization.classification_dataset(frame, bert_tokenizer, ["text"], 32)["input_ids"] == whole
    head_tail = long_text.head_tail_dataset(frame, bert_tokenizer, "text", max_length=32)["input_ids"]
    ids = bert_tokenizer(huge, add_special_tokens=False)["input_ids"]
    budget = 32 - 2
    assert head_tail[0][1:-1] == ids[: budget // 4] + ids[len(ids) - (budget - budget // 4) :]
