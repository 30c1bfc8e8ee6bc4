"""Shared building blocks of the recipes, one subpackage per step of a run, lower layers first:

  errors, runtime, assets, config   the bottom: bad-input errors, the machine, embedded assets, the run configuration
  data        tables from files/hub/embedded packages, cleaned and split; token datasets and batching
  model       loading checkpoints; the techniques that change a model (dropout, freezing, LoRA, chunked LM loss)
  train       TrainingArguments, RecipeTrainer, the techniques that hook into training (losses, callbacks, LR groups)
  evaluate    metrics and the test split looked at closely; returns data
  report      renders it: terminal table, report.md, model card, plots, explain.html
  tasks       the kinds of run (classification, causal_lm, ...), a module each: its configuration, and what the
              code shared by every kind asks of it (report parts, model card, predicting and serving a saved run)
  run         the output folder (check, resume, atomic save), k-fold and search, starting a recipe
  serve       predictions and an HTTP server for a saved run

A module imports only from its own subpackage or the ones above it in this list (tests/common/test_layout.py).
"""
