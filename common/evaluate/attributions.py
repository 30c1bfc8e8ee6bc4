"""Token attributions: which tokens pushed a classifier towards its prediction, by integrated gradients.

Integrated gradients (Sundararajan et al., 2017) average the gradient along the straight path from a baseline
input to the real one and multiply by the difference: the attributions add up to the predicted logit minus the
baseline's (tested), so they are on one scale and no token is credited for what the model does with nothing.
The baseline keeps the special tokens ([CLS], [SEP]) and replaces every other token by the padding token, so
special tokens get exactly 0 and stay out of the shading. Gradient x input, used before, gave every token a
share of the special tokens' weight (they dominated the shading) and shaded "prize", "won" and "guaranteed" as
pushing away from spam on a correct spam prediction.
"""

from __future__ import annotations

import torch

# points on the path (midpoint rule): the attributions' sum came within 0.1% of the logit difference on MiniLM
# fine-tuned on Rotten Tomatoes, within 6% on a tiny BERT trained hard on one trigger word (tested)
STEPS = 32


def token_attributions(model, tokenizer, texts: tuple, device, label_names: list[str], steps: int = STEPS) -> dict:
    """For the predicted class: one number per token, whose sign says whether the token pushed towards (+) or
    away from (-) that class; special tokens get 0 and are marked in `special`."""
    model.eval()
    positions = getattr(model.config, "max_position_embeddings", None) or 512
    inputs = tokenizer(*texts, return_tensors="pt", truncation=True, max_length=min(positions, 512)).to(device)
    ids = inputs["input_ids"]
    special = torch.tensor(
        tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True), dtype=torch.bool
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    baseline_ids = torch.where(special.to(ids.device), ids[0], torch.full_like(ids[0], pad or 0))[None]
    embed = model.get_input_embeddings()
    with torch.no_grad():
        real, baseline = embed(ids), embed(baseline_ids)
        rest = {k: v for k, v in inputs.items() if k != "input_ids"}
        logits = model(inputs_embeds=real, **rest).logits[0].float()
        start = model(inputs_embeds=baseline, **rest).logits[0].float()
    predicted = int(logits.argmax())
    gradient = torch.zeros_like(real[0], dtype=torch.float32)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    for chunk in alphas.split(8):
        k = len(chunk)
        path = (baseline + chunk.to(device).view(k, 1, 1).to(real.dtype) * (real - baseline)).requires_grad_(True)
        out = model(inputs_embeds=path, **{name: v.expand(k, -1) for name, v in rest.items()}).logits
        (grad,) = torch.autograd.grad(out[:, predicted].float().sum(), path)
        gradient += grad.float().sum(0)
    scores = ((real[0] - baseline[0]).float() * gradient / steps).sum(-1).cpu()
    scores[special] = 0.0
    return {
        "tokens": tokenizer.convert_ids_to_tokens(ids[0]),
        "scores": scores.tolist(),
        "special": special.tolist(),
        "predicted": label_names[predicted],
        "probability": float(torch.softmax(logits, -1)[predicted]),
        "difference": float(logits[predicted] - start[predicted]),  # what the scores add up to (completeness)
    }
