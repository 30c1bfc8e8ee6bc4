"""explain.html: token attributions as shaded text."""

from __future__ import annotations

import html


def explain_html(attributions: list[dict]) -> str:
    """One paragraph per example, tokens shaded green (towards the predicted class) or red (away from it); special
    tokens ([CLS], [SEP]) unshaded and out of the scale; each token's attribution in its tooltip."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Token attributions</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}span{padding:1px 2px;border-radius:3px}"
        "p{line-height:2}.special{color:#999}</style>",
        "<h1>Token attributions (integrated gradients)</h1><p>Green: pushed towards the predicted label; red: away "
        "from it. Shading is scaled per example; a token's number (hover) is its share of the predicted logit.</p>",
    ]
    for example in attributions:
        special = example.get("special") or [False] * len(example["tokens"])
        scale = max((abs(s) for s, skip in zip(example["scores"], special) if not skip), default=0.0) or 1.0
        spans = []
        for token, score, skip in zip(example["tokens"], example["scores"], special):
            if skip:
                spans.append(f"<span class='special'>{html.escape(token)}</span>")
                continue
            strength = min(1.0, abs(score) / scale)
            color = f"rgba(0,160,0,{strength:.2f})" if score >= 0 else f"rgba(220,0,0,{strength:.2f})"
            spans.append(f"<span style='background:{color}' title='{score:+.3g}'>{html.escape(token)}</span>")
        true = example.get("true")
        verdict = f", true {html.escape(true)}: {'right' if example['predicted'] == true else 'wrong'}" if true else ""
        parts.append(
            f"<h3>predicted {html.escape(example['predicted'])} ({example['probability']:.3f}){verdict}</h3>"
            f"<p>{' '.join(spans)}</p>"
        )
    return "\n".join(parts) + "\n"
