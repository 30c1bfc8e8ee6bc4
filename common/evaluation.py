"""After training: the test split looked at closely. Full metrics, the errors, per-class numbers, token
attributions (--explain), and for causal LMs the hardest passages and BLEU/chrF of generated continuations.

Each function returns an `Evaluation`: flat `test_*` metrics for metrics.json, `details` for
evaluation.json, `files` (name -> content) that save_run writes next to the model, and Markdown sections
for report.md.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from common import plots
from common.metrics import add_perplexity, classification_scores, confusion, softmax


@dataclass
class Evaluation:
    metrics: dict
    details: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    data: str = ""  # the Data section of report.md: split sizes, class balance


def classification(trainer, dataset, splits: dict, label_names: list[str], text_columns: list[str],
                   explain: int = 0, tokenizer=None) -> Evaluation:
    """Test metrics (every average, per class, MCC, ROC-AUC), the confusion matrix, errors.csv ranked by the
    model's confidence, per_class.csv, and with explain > 0 explain.html."""
    output = trainer.predict_in_order(dataset)  # sliding windows: one prediction per document
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    labels = output.label_ids
    counts = {"test_windows": len(dataset), "test_documents": len(labels)} if "document" in dataset.column_names else {}
    probabilities = softmax(logits)
    predictions = probabilities.argmax(-1)
    scores = classification_scores(labels, probabilities, label_names)
    metrics = {"test_loss": output.metrics["test_loss"], **counts, **{f"test_{k}": v for k, v in scores.items()}}
    metrics.update({k: v for k, v in output.metrics.items() if k.endswith(("_runtime", "_per_second"))})
    matrix = confusion(labels, predictions, len(label_names))

    frame = splits["test"].reset_index(drop=True)
    errors = pd.DataFrame({column: frame[column] for column in text_columns})
    errors["true_label"] = [label_names[i] for i in labels]
    errors["predicted_label"] = [label_names[i] for i in predictions]
    errors["probability"] = probabilities.max(-1)
    errors["true_label_probability"] = probabilities[np.arange(len(labels)), labels]
    errors = errors[predictions != labels].sort_values("probability", ascending=False, kind="stable")
    per_class = pd.DataFrame({
        "label": label_names,
        "precision": [scores[f"{n}_precision"] for n in label_names],
        "recall": [scores[f"{n}_recall"] for n in label_names],
        "f1": [scores[f"{n}_f1"] for n in label_names],
        "support": [scores[f"{n}_support"] for n in label_names],
        "most_often_mistaken_for": [_most_confused(matrix, i, label_names) for i in range(len(label_names))],
    })
    files = {"errors.csv": errors.to_csv(index=False), "per_class.csv": per_class.to_csv(index=False),
             "confusion_matrix.png": plots.confusion_matrix(matrix, label_names)}
    sections = [_per_class_section(per_class, matrix, label_names), _errors_section(errors, len(labels), text_columns)]
    if explain:
        model, device = trainer.model, trainer.args.device
        rows = [tuple(frame.loc[i, c] for c in text_columns) for i in range(min(explain, len(frame)))]
        attributions = [token_attributions(model, tokenizer, row, device, label_names) for row in rows]
        files["explain.html"] = explain_html(attributions, [label_names[i] for i in labels[:len(rows)]])
        sections.append(f"## Explanations\n\nToken attributions (gradient x input) for the first {len(rows)} test "
                        f"examples: [explain.html](explain.html).\n")
    details = {"test": {**scores, "confusion_matrix": matrix, "labels": label_names}}
    return Evaluation(metrics, details, files, sections, _data_section(splits, label_names))


def _data_section(splits: dict, label_names: list[str]) -> str:
    lines = ["## Data", "", "| split | examples | " + " | ".join(label_names) + " |", "|---" * (len(label_names) + 2) + "|"]
    for name, frame in sorted(splits.items(), key=lambda item: ("train", "validation", "test").index(item[0])):
        counts = np.bincount(frame["labels"], minlength=len(label_names))
        lines.append(f"| {name} | {len(frame)} | " + " | ".join(f"{c} ({c / max(len(frame), 1):.0%})" for c in counts) + " |")
    return "\n".join(lines) + "\n"


def _most_confused(matrix: list[list[int]], row: int, label_names: list[str]) -> str:
    counts = [(count, label_names[j]) for j, count in enumerate(matrix[row]) if j != row and count]
    return f"{max(counts)[1]} ({max(counts)[0]})" if counts else ""


def _per_class_section(per_class: pd.DataFrame, matrix: list[list[int]], label_names: list[str]) -> str:
    rows = [f"| {r.label} | {r.precision:.4f} | {r.recall:.4f} | {r.f1:.4f} | {r.support} | {r.most_often_mistaken_for} |"
            for r in per_class.itertuples()]
    header = "| true \\ predicted | " + " | ".join(label_names) + " |"
    grid = [f"| **{name}** | " + " | ".join(str(c) for c in matrix[i]) + " |" for i, name in enumerate(label_names)]
    return "\n".join(["## Per class (test)", "", "| label | precision | recall | F1 | support | most often mistaken for |",
                      "|---|---|---|---|---|---|", *rows, "", "Confusion matrix (rows: true label):", "", header,
                      "|---" * (len(label_names) + 1) + "|", *grid, "", "![confusion matrix](confusion_matrix.png)", ""])


def _errors_section(errors: pd.DataFrame, total: int, text_columns: list[str], shown: int = 10) -> str:
    lines = [f"## The most confident errors ({len(errors)} of {total} test examples wrong; all in [errors.csv](errors.csv))",
             "", "| text | true | predicted | probability |", "|---|---|---|---|"]
    for row in errors.head(shown).itertuples(index=False):
        text = " / ".join(str(getattr(row, c)) for c in text_columns).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {text[:160]}{'...' if len(text) > 160 else ''} | {row.true_label} | {row.predicted_label} | "
                     f"{row.probability:.3f} |")
    return "\n".join(lines) + "\n"


def token_attributions(model, tokenizer, texts: tuple, device, label_names: list[str]) -> dict:
    """Gradient x input on the input embeddings for the predicted class: one number per token, whose sign
    says whether the token pushed towards (+) or away from (-) that class."""
    model.eval()
    positions = getattr(model.config, "max_position_embeddings", None) or 512
    inputs = tokenizer(*texts, return_tensors="pt", truncation=True, max_length=min(positions, 512)).to(device)
    embeddings = model.get_input_embeddings()(inputs["input_ids"]).detach().requires_grad_(True)
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}
    logits = model(inputs_embeds=embeddings, **rest).logits[0].float()
    predicted = int(logits.argmax())
    logits[predicted].backward()
    scores = (embeddings.grad[0] * embeddings[0]).sum(-1).detach().float().cpu().numpy()
    tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    probability = float(torch.softmax(logits.detach(), -1)[predicted])
    return {"tokens": tokens, "scores": scores.tolist(), "predicted": label_names[predicted], "probability": probability}


def explain_html(attributions: list[dict], true_labels: list[str]) -> str:
    """One paragraph per example, tokens shaded green (towards the predicted class) or red (away from it)."""
    parts = ["<!doctype html><meta charset='utf-8'><title>Token attributions</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}span{padding:1px 2px;border-radius:3px}"
             "p{line-height:2}</style>",
             "<h1>Token attributions (gradient x input)</h1><p>Green: pushed towards the predicted label; red: away from it. "
             "Shading is scaled per example.</p>"]
    for example, true in zip(attributions, true_labels):
        scale = max(abs(s) for s in example["scores"]) or 1.0
        spans = []
        for token, score in zip(example["tokens"], example["scores"]):
            strength = abs(score) / scale
            color = f"rgba(0,160,0,{strength:.2f})" if score >= 0 else f"rgba(220,0,0,{strength:.2f})"
            spans.append(f"<span style='background:{color}' title='{score:+.4f}'>{html.escape(token)}</span>")
        verdict = "right" if example["predicted"] == true else "wrong"
        parts.append(f"<h3>predicted {html.escape(example['predicted'])} ({example['probability']:.3f}), true "
                     f"{html.escape(true)}: {verdict}</h3><p>{' '.join(spans)}</p>")
    return "\n".join(parts) + "\n"


@torch.no_grad()
def causal_lm(trainer, tokenizer, datasets: dict, prompts: int = 8, prompt_tokens: int = 32, new_tokens: int = 32,
              hardest: int = 10) -> Evaluation:
    """One pass over the test blocks: perplexity, next-token accuracy and each block's loss (the hardest
    passages); then BLEU/chrF of greedy continuations of `prompts` test-block openings against the text that
    really follows (sacrebleu)."""
    import sacrebleu

    tested = trainer.predict_in_order(datasets["test"])  # block losses come from metrics.next_token_predictions
    losses = np.asarray(tested.predictions[1], dtype=np.float64).tolist()
    model, device = trainer.model, trainer.args.device
    model.eval()
    ids = torch.tensor(np.asarray(datasets["test"]["input_ids"]))
    order = np.argsort(losses)[::-1][:hardest]
    passages = pd.DataFrame({"block": order, "loss": [losses[i] for i in order],
                             "perplexity": [float(np.exp(losses[i])) for i in order],
                             "text": [tokenizer.decode(ids[i], skip_special_tokens=True) for i in order]})

    chosen = ids[: min(prompts, len(ids))]
    generated, references = [], []
    for row in chosen:
        prompt = row[:prompt_tokens].unsqueeze(0).to(device)
        output = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                do_sample=False, pad_token_id=tokenizer.pad_token_id)
        generated.append(tokenizer.decode(output[0, prompt_tokens:], skip_special_tokens=True))
        references.append(tokenizer.decode(row[prompt_tokens:prompt_tokens + new_tokens], skip_special_tokens=True))
    bleu = sacrebleu.corpus_bleu(generated, [references]).score
    chrf = sacrebleu.corpus_chrf(generated, [references]).score
    continuations = pd.DataFrame({"prompt": [tokenizer.decode(r[:prompt_tokens], skip_special_tokens=True) for r in chosen],
                                  "generated": generated, "reference": references})
    metrics = {**add_perplexity(dict(tested.metrics), "test"), "test_continuation_bleu": bleu, "test_continuation_chrf": chrf}
    block = ids.shape[1]
    data = "\n".join(["## Data", "", "| split | blocks | tokens |", "|---|---|---|",
                      *[f"| {name} | {len(d)} | {len(d) * block:,} |" for name, d in datasets.items()], ""])
    lines = [f"## Continuations of {len(chosen)} test passages", "",
             f"Greedy {new_tokens} tokens after the first {prompt_tokens} tokens of a test block, scored against the text "
             f"that follows: BLEU {bleu:.2f}, chrF {chrf:.2f} (sacrebleu). All in [continuations.csv](continuations.csv).", "",
             f"## The hardest test passages (highest loss; all {len(passages)} in [hardest_passages.csv](hardest_passages.csv))", "",
             "| block | loss | perplexity | start of the passage |", "|---|---|---|---|"]
    lines += [f"| {r.block} | {r.loss:.3f} | {r.perplexity:.1f} | {' '.join(r.text.split())[:120].replace('|', '/')} |"
              for r in passages.itertuples()]
    files = {"hardest_passages.csv": passages.to_csv(index=False), "continuations.csv": continuations.to_csv(index=False)}
    return Evaluation(metrics, {"test": {**metrics, "block_losses": losses}}, files, ["\n".join(lines) + "\n"], data)

