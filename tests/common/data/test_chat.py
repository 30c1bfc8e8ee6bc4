"""What a chat run trains, on three real tokenizers' templates (ChatML with pad == end of turn, a Llama-3-style one,
a Zephyr-style one whose end of turn is the end-of-text token), checked against references: transformers' own
generation-marker mask and TRL's completion mask. Packing and batching keep each conversation's loss its own."""

import copy

import pytest
import torch
from transformers import AutoTokenizer

from common import assets
from common.data.chat import (
    IGNORE,
    ChatCollator,
    chat_datasets,
    check_masks,
    drop_long,
    encode,
    end_of_turn,
    fit_length,
    marked,
    pack,
    set_chat_template,
)
from common.errors import UserError
from common.model.load import pad_with_end_of_text

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue, like the sky."},
    ],
]
# Llama 3's, but with one newline after each header: with two, GPT-2's BPE reads the prompt's final "\n\n" as one token
# and "\n\n4" as three, which the refusal test below shows being caught
LLAMA3 = (
    "{{ '<|begin_of_text|>' }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n' }}{% endif %}"
)
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
ZEPHYR = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def smollm2():
    return AutoTokenizer.from_pretrained(assets.model_dir("embedded:smollm2-135m"))


def gpt2_with(template: str, tokens: list[str]):
    tokenizer = pad_with_end_of_text(AutoTokenizer.from_pretrained(assets.gpt2_tokenizer_dir()))
    tokenizer.add_tokens(tokens, special_tokens=True)
    tokenizer.chat_template = template
    return tokenizer


def templates(smollm2):
    return {
        "chatml, pad == end of turn": smollm2,
        "llama-3 style": gpt2_with(
            LLAMA3, ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        ),
        "zephyr style, end of turn == end of text == pad": gpt2_with(
            ZEPHYR, ["<|user|>", "<|assistant|>", "<|system|>"]
        ),
    }


@pytest.mark.parametrize(
    "name", ["chatml, pad == end of turn", "llama-3 style", "zephyr style, end of turn == end of text == pad"]
)
def test_the_replies_and_each_end_of_turn_are_trained_and_nothing_else(smollm2, name):
    tokenizer = templates(smollm2)[name]
    stop = end_of_turn(tokenizer)
    encoded = encode(tokenizer, CONVERSATIONS, "assistant", "the train data")
    for conversation, tokens, labels in zip(CONVERSATIONS, encoded["input_ids"], encoded["labels"]):
        trained = [t for t, label in zip(tokens, labels) if label != IGNORE]
        assert [t for t, label in zip(tokens, labels) if label != IGNORE and label != t] == []
        replies = [m["content"] for m in conversation if m["role"] == "assistant"]
        assert trained.count(stop) == len(replies)  # every reply ends with the token generation stops at
        text = tokenizer.decode([t for t in trained if t != stop])
        assert "".join(text.split()) == "".join("".join(replies).split())  # the replies, nothing of the prompts
    if name.startswith("chatml"):
        assert tokenizer.pad_token_id == stop  # the case TRL #1623 is about: still trained, see the collator test


def test_our_mask_is_transformers_generation_marker_mask_plus_the_templates_newline(smollm2):
    """A template with {% generation %} markers gives transformers' own assistant mask, a reference for ours: the
    same tokens, and ours also trains the newline the template writes after <|im_end|> (as TRL's completion does)."""
    marked_template = smollm2.chat_template.replace(
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
        "{% if message['role'] == 'assistant' %}{{'<|im_start|>assistant\n'}}{% generation %}"
        "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{'\n'}}{% else %}{{'<|im_start|>' + "
        "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endif %}",
    )
    assert "{% generation %}" in marked_template
    tokenizer = copy.deepcopy(smollm2)
    tokenizer.chat_template = marked_template
    ours = encode(tokenizer, CONVERSATIONS, "assistant", "the train data")
    for conversation, tokens, labels in zip(CONVERSATIONS, ours["input_ids"], ours["labels"]):
        reference = tokenizer.apply_chat_template(conversation, return_dict=True, return_assistant_tokens_mask=True)
        assert reference["input_ids"] == tokens
        for position, (mine, theirs) in enumerate(zip(labels, reference["assistant_masks"])):
            if bool(theirs):
                assert mine == tokens[position]
            elif mine != IGNORE:  # ours only: the template's newline right after a reply
                assert tokenizer.decode([tokens[position]]) == "\n" and reference["assistant_masks"][position - 1]


def test_on_prompt_completion_data_our_mask_is_trls_completion_mask(smollm2, tiny_llama, tmp_path):
    """TRL's SFTTrainer, on the same conversations as prompt/completion pairs, trains the same tokens."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    rows = [{"prompt": c[:-1], "completion": c[-1:]} for c in CONVERSATIONS]
    trl = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_llama),
        args=SFTConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True),
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=smollm2,
    ).train_dataset
    ours = encode(smollm2, CONVERSATIONS, "last", "the train data")  # TRL trains the completion: the last reply
    assert ours["input_ids"] == trl["input_ids"]
    assert ours["labels"] == trl["labels"]


def test_train_on_last_and_all(smollm2):
    last = encode(smollm2, CONVERSATIONS[1:], "last", "the train data")
    trained = smollm2.decode([t for t, label in zip(last["input_ids"][0], last["labels"][0]) if label != IGNORE])
    assert trained == "Blue, like the sky.<|im_end|>\n"
    everything = encode(smollm2, CONVERSATIONS, "all", "the train data")
    assert everything["labels"] == everything["input_ids"]


def test_the_collator_pads_by_position_so_a_pad_token_that_ends_turns_is_still_trained(smollm2):
    encoded = encode(smollm2, CONVERSATIONS, "assistant", "the train data")
    rows = [{"input_ids": i, "labels": label} for i, label in zip(encoded["input_ids"], encoded["labels"])]
    batch = ChatCollator(smollm2.pad_token_id)(rows)
    short = len(rows[0]["input_ids"])
    assert batch["labels"][0, :short].tolist() == rows[0]["labels"]  # its <|im_end|> (== pad) keeps its label
    assert (batch["labels"][0, short:] == IGNORE).all() and (
        batch["input_ids"][0, short:] == smollm2.pad_token_id
    ).all()
    assert batch["attention_mask"][0].tolist() == [1] * short + [0] * (batch["input_ids"].shape[1] - short)
    assert (batch["labels"][0] == smollm2.pad_token_id).sum() == 1  # trained once, padded many times


def test_a_template_that_renders_a_prompt_differently_once_answered_is_refused():
    shifted = gpt2_with(
        "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ '<|assistant|> ' + m['content'] + eos_token }}"
        "{% else %}{{ '<|user|>\\n' + m['content'] + eos_token }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
        ["<|user|>", "<|assistant|>"],
    )
    with pytest.raises(UserError, match="the train data, conversation 1: the chat template does not render reply 1"):
        encode(shifted, CONVERSATIONS, "assistant", "the train data")
    assert encode(shifted, CONVERSATIONS, "all", "the train data")  # --train-on all needs no boundary


@pytest.mark.parametrize(
    "template, tokens",
    [
        (  # the prompt ends in a space that BPE joins to the reply's first word (" 4")
            "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + eos_token }}{% endfor %}"
            "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}",
            [],
        ),
        (LLAMA3.replace("\\n'", "\\n\\n'"), LLAMA3_TOKENS),  # Llama 3's own "\n\n", read by GPT-2's BPE
    ],
)
def test_a_reply_whose_first_token_merges_with_the_prompt_is_refused_not_guessed(template, tokens):
    merging = gpt2_with(template, tokens)
    with pytest.raises(UserError, match="a reply's first or last token merges with the text around it"):
        encode(merging, CONVERSATIONS, "assistant", "the train data")


def test_a_model_without_a_chat_template_is_refused_with_the_fix_and_chatml_adds_its_tokens():
    tokenizer = pad_with_end_of_text(AutoTokenizer.from_pretrained(assets.gpt2_tokenizer_dir()))
    with pytest.raises(UserError, match="has no chat template .* pass --chat-template chatml"):
        set_chat_template(tokenizer, "auto", "gpt2")
    size = len(tokenizer)
    assert set_chat_template(tokenizer, "chatml", "gpt2") == ["<|im_start|>", "<|im_end|>"]
    assert len(tokenizer) == size + 2 and tokenizer.decode([end_of_turn(tokenizer)]) == "<|im_end|>"
    encoded = encode(tokenizer, CONVERSATIONS, "assistant", "the train data")
    assert check_masks(encoded, "assistant", "the train data") < 0.5


def test_a_template_file_and_a_broken_one(tmp_path, smollm2):
    (tmp_path / "zephyr.jinja").write_text(ZEPHYR)
    tokenizer = copy.deepcopy(smollm2)
    set_chat_template(tokenizer, str(tmp_path / "zephyr.jinja"), "m")
    assert tokenizer.chat_template == ZEPHYR
    (tmp_path / "broken.jinja").write_text("{% for m in messages %}{{ m['content'] }")
    with pytest.raises(UserError, match="cannot render|refused a conversation"):
        set_chat_template(copy.deepcopy(smollm2), str(tmp_path / "broken.jinja"), "m")
    with pytest.raises(
        UserError, match="--chat-template 'nope.jinja' is neither auto, chatml nor a Jinja template file"
    ):
        set_chat_template(copy.deepcopy(smollm2), "nope.jinja", "m")
    (tmp_path / "latin1.jinja").write_bytes("{{ 'caf\xe9' }}".encode("latin-1"))
    with pytest.raises(UserError, match="is not valid UTF-8 \\(byte 7\\); re-save it as UTF-8"):
        set_chat_template(copy.deepcopy(smollm2), str(tmp_path / "latin1.jinja"), "m")


def test_masks_that_train_nothing_or_everything_are_refused():
    with pytest.raises(UserError, match="no token would be trained"):
        check_masks({"input_ids": [[1, 2, 3]], "labels": [[IGNORE] * 3]}, "assistant", "the train data")
    with pytest.raises(UserError, match="every token would be trained, prompts too, with --train-on assistant"):
        check_masks({"input_ids": [[1, 2, 3]], "labels": [[1, 2, 3]]}, "assistant", "the train data")
    assert check_masks({"input_ids": [[1, 2, 3]], "labels": [[1, 2, 3]]}, "all", "the train data") == 1.0


def test_marked_shows_the_trained_tokens_to_a_person(smollm2):
    encoded = encode(smollm2, CONVERSATIONS[:1], "assistant", "the train data")
    assert marked(smollm2, encoded["input_ids"][0], encoded["labels"][0]).endswith(
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n⟦4<|im_end|>\n⟧"
    )


def test_length_auto_and_conversations_that_do_not_fit_are_left_out_not_cut(smollm2):
    encoded = {"train": encode(smollm2, CONVERSATIONS, "assistant", "train")}
    assert fit_length(encoded, "auto", 8192) == 8 * -(-max(len(r) for r in encoded["train"]["input_ids"]) // 8)
    assert fit_length(encoded, 64, 8192) == 64
    short = len(encoded["train"]["input_ids"][0])
    kept, splits = drop_long(encoded, {"train": CONVERSATIONS}, short)
    assert kept["train"]["input_ids"] == encoded["train"]["input_ids"][:1] and splits["train"] == CONVERSATIONS[:1]
    with pytest.raises(UserError, match="every train conversation is longer than --max-length 8; raise it"):
        drop_long(encoded, {"train": CONVERSATIONS}, 8)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_a_packed_row_gives_each_conversation_the_loss_it_has_alone(smollm2, tiny_llama, attention):
    """Positions restart per conversation and no attention mask is passed: no conversation attends to another."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, attn_implementation=attention).eval()
    model.config.use_cache = False  # as Trainer sets it: packed masks are built only without a KV cache
    conversations = CONVERSATIONS * 2 + [CONVERSATIONS[1][:3]]
    encoded = encode(smollm2, conversations, "all", "the train data")
    packed = pack(encoded, max_length=200)
    assert len(packed["input_ids"]) < len(conversations)  # several conversations share a row

    def token_losses(input_ids, labels, position_ids=None):
        """The loss of predicting each next token (0 where its label is not trained)."""
        with torch.no_grad():
            logits = model(torch.tensor([input_ids]), position_ids=position_ids).logits[0]
        targets = torch.tensor(labels[1:])
        return torch.nn.functional.cross_entropy(logits[:-1], targets.clamp(min=0), reduction="none") * (
            targets != IGNORE
        )

    alone = [float(token_losses(i, label).sum()) for i, label in zip(encoded["input_ids"], encoded["labels"])]
    packed_losses = []
    for row, labels, positions in zip(packed["input_ids"], packed["labels"], packed["position_ids"]):
        losses = token_losses(row, labels, torch.tensor([positions]))
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        packed_losses += [float(losses[a : b - 1].sum()) for a, b in zip(starts, starts[1:])]
        assert float(losses.sum()) == pytest.approx(sum(packed_losses[-(len(starts) - 1) :]), rel=1e-6)
    assert sorted(packed_losses) == pytest.approx(sorted(alone), abs=1e-4)


def test_packed_batches_carry_positions_and_no_attention_mask(smollm2):
    encoded = {"train": encode(smollm2, CONVERSATIONS, "assistant", "t")}
    train = chat_datasets(encoded, packing=True, max_length=128)["train"]
    batch = ChatCollator(smollm2.pad_token_id)([train[0]])
    assert set(batch) == {"input_ids", "labels", "position_ids"} and batch["position_ids"][0, 0] == 0


def test_a_template_that_refuses_a_conversation_names_it():
    strict = gpt2_with(  # as Gemma's and Mistral's templates refuse a system message
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['content'] + eos_token }}{% endfor %}",
        [],
    )
    with pytest.raises(UserError, match=r"the train data, conversation 2: .*\(System role not supported\); fix it"):
        encode(strict, CONVERSATIONS, "assistant", "the train data")
