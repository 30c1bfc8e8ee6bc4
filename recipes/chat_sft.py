"""Chat and instruction fine-tuning (SFT): a causal LM learns to reply, through its chat template, on the replies only.

Conversations in the formats people bring (OpenAI `messages`, ShareGPT, Alpaca, prompt/response columns) are
rendered with the tokenizer's chat template; the loss is on the assistant's replies and the end-of-turn token after
each, found by rendering every conversation prefix by prefix (any template; one line refuses a template where the
replies cannot be told apart). Before and after training: the held-out replies' loss, and the model's own replies to
the test prompts scored against the references, with the share that stop.

Out of the box: the embedded SmolLM2-135M-Instruct on ChatterBot's English dialog corpus.
  python recipes/chat_sft.py                                    # the default run (make chat)
  python recipes/chat_sft.py --train-file chats.jsonl           # {"messages": [{"role": "user", ...}, ...]} per line
  python recipes/chat_sft.py --train-file qa.csv --prompt-column question --response-column answer

Supports: any causal-LM checkpoint with a chat template (--chat-template chatml for one without); csv/json/jsonl/
parquet or hub datasets; --train-on assistant|last|all; --packing; the techniques of docs/techniques.md (LoRA, ...).
"""

from common.config import CausalLMTraining, ModelConfig, answer_help
from common.tasks.chat import ChatConfig, ChatData, ChatOutput

# What this recipe runs with no flags; every flag (see --help) changes one of these settings.
DEFAULTS = ChatConfig(
    model=ModelConfig(model="embedded:smollm2-135m"),
    data=ChatData(
        dataset="embedded:chatterbot",  # 899 short conversations: trivia, small talk, coding, ...
    ),
    training=CausalLMTraining(epochs=3, lr=5e-5, batch_size=16),
    output=ChatOutput(output_dir="outputs/chat_sft"),
)

if __name__ == "__main__":
    answer_help(DEFAULTS, __doc__)  # before the imports below: --help need not wait seconds for torch

from common.data.chat import ChatCollator, chat_datasets, drop_long, encoded_splits, fit_length, set_chat_template
from common.data.conversations import conversation_splits
from common.evaluate import causal_lm_metrics, next_token_predictions
from common.evaluate.chat import compare, evaluate_chat, reply_budget
from common.model import adapt, load_causal_lm, load_tokenizer, model_positions, pad_with_end_of_text
from common.model.chat import ready_to_chat
from common.report import print_metrics
from common.run import command_line, save_run, start_run
from common.train import RecipeTrainer, technique_hooks, training_arguments

SHOWN = ["test_loss_before", "test_loss", "test_chrf_before", "test_chrf", "test_stopped_before", "test_stopped",
         "test_exact_match", "train_runtime"]  # printed at the end; metrics.json has them all  # fmt: skip


def main(config: ChatConfig = DEFAULTS) -> dict:
    """One run: replies before, train, replies after, save. Returns the metrics (also in metrics.json)."""
    # 1. the run: output folder checked, random state seeded, the checkpoint to --resume from (or None)
    resume = start_run(config)

    # 2. data: conversations in any known format, checked row by row, de-duplicated, split 80/10/10 by opening
    splits = conversation_splits(config.data, config.training.seed)

    # 3. tokens through the chat template, labels where --train-on trains; over --max-length: left out, not cut
    tokenizer = pad_with_end_of_text(load_tokenizer(config.model.model, config.model.trust_remote_code))
    added = set_chat_template(tokenizer, config.data.chat_template, config.model.model)
    encoded = encoded_splits(tokenizer, splits, config.data.train_on)
    config = config.derive(
        max_length=fit_length(encoded, config.data.max_length, model_positions(config.model)),
        max_new_tokens=reply_budget(tokenizer, splits["test"], config.output.max_new_tokens),
    )
    encoded, splits = drop_long(encoded, splits, config.data.max_length)
    datasets = chat_datasets(encoded, config.data.packing, config.data.max_length)

    # 4. model: room for tokens the template added, stops at the end of a turn; then --freeze-*, --lora-r, ...
    model = load_causal_lm(config.model, tokenizer, config.data.max_length, "--max-length", len(added))
    model = ready_to_chat(model, tokenizer, added, config.techniques)
    model = adapt(model, config.techniques, chunked_lm_loss=config.training.chunked_lm_loss)

    # 5. Trainer: batches padded by position (the pad token may be the end-of-turn token, which is trained)
    trainer = RecipeTrainer(
        config=config,
        model=model,
        args=training_arguments(config, model=model),
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        data_collator=ChatCollator(tokenizer.pad_token_id),
        compute_metrics=causal_lm_metrics,
        preprocess_logits_for_metrics=next_token_predictions,
        **technique_hooks(config.techniques, model),
    )

    # 6. before: the test replies' loss and the model's own replies to the test prompts; train; after: the same
    test, new_tokens = (datasets["test"], splits["test"]), config.output.max_new_tokens
    before = evaluate_chat(trainer, tokenizer, *test, new_tokens, config.output.reply_prompts)
    train_result = trainer.train(resume_from_checkpoint=resume)
    after = evaluate_chat(trainer, tokenizer, *test, new_tokens, config.output.reply_prompts)
    test = compare(before, after, splits, encoded, tokenizer, trainer.state.global_step, new_tokens)
    metrics = {**train_result.metrics, **test.metrics}
    print_metrics("Held-out test (before -> after)", metrics, SHOWN)

    # 7. save model (or LoRA adapter), tokenizer with its chat template, metrics, report.md
    save_run(config, model, tokenizer, metrics, trainer.state.log_history, test)
    return metrics


if __name__ == "__main__":
    command_line(main, DEFAULTS)  # flags -> config; --search runs main() once per trial
