"""Token attributions (gradient x input): which tokens pushed a classifier towards its prediction."""

from __future__ import annotations

import torch


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
    return {
        "tokens": tokens,
        "scores": scores.tolist(),
        "predicted": label_names[predicted],
        "probability": probability,
    }
