"""explain.html: token attributions as shaded text."""

from __future__ import annotations

import html


def explain_html(attributions: list[dict]) -> str:
    """One paragraph per example, tokens shaded green (towards the predicted class) or red (away from it)."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Token attributions</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}span{padding:1px 2px;border-radius:3px}"
        "p{line-height:2}</style>",
        "<h1>Token attributions (gradient x input)</h1><p>Green: pushed towards the predicted label; red: away from it. "
        "Shading is scaled per example.</p>",
    ]
    for example in attributions:
        scale = max(abs(s) for s in example["scores"]) or 1.0
        spans = []
        for token, score in zip(example["tokens"], example["scores"]):
            strength = abs(score) / scale
            color = f"rgba(0,160,0,{strength:.2f})" if score >= 0 else f"rgba(220,0,0,{strength:.2f})"
            spans.append(f"<span style='background:{color}' title='{score:+.4f}'>{html.escape(token)}</span>")
        verdict = "right" if example["predicted"] == example["true"] else "wrong"
        parts.append(
            f"<h3>predicted {html.escape(example['predicted'])} ({example['probability']:.3f}), true "
            f"{html.escape(example['true'])}: {verdict}</h3><p>{' '.join(spans)}</p>"
        )
    return "\n".join(parts) + "\n"
