"""How a chat model's replies are scored: several references per prompt, ROUGE-L and exact match by hand, the stop
check, and the reply budget."""

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from common.evaluate.chat import prompts_and_references, reply_budget, reply_scores, rouge_l
from common.model.chat import Replies, reply


def test_rouge_l_is_the_longest_common_subsequence_f1():
    # "the cat on the mat": 5 of 6 words each way
    assert rouge_l("the cat sat on the mat", "The cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("blue", "red") == 0 and rouge_l("", "") == 1 and rouge_l("a", "") == 0


def test_a_prompt_answered_several_ways_is_scored_against_all_its_answers():
    asked = [{"role": "user", "content": "Are you immortal?"}]
    conversations = [
        [*asked, {"role": "assistant", "content": "As long as I'm backed up I am."}],
        [*asked, {"role": "assistant", "content": "All software can be perpetuated indefinitely."}],
        [
            {"role": "user", "content": "What band is The Cranberries?"},
            {"role": "assistant", "content": "An Irish one."},
        ],
    ]
    prompts, references = prompts_and_references(conversations)
    assert prompts == [asked, conversations[2][:1]] and len(references[0]) == 2
    replies = Replies(["All software can be perpetuated indefinitely", "an irish one"], [True, False], [9, 7], [8, 4])
    scores = reply_scores(replies, references)
    assert scores["test_exact_match"] == 1.0  # the second reference, and SQuAD's normalization (case, punctuation)
    assert scores["test_stopped"] == 0.5 and scores["test_reply_tokens"] == 6.0
    assert scores["test_rouge_l"] == pytest.approx(1.0) and scores["test_chrf"] > 90


def test_the_reply_budget_makes_room_for_the_longest_reference(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    long = [{"role": "user", "content": "say it"}, {"role": "assistant", "content": "word " * 50}]
    longest = len(tokenizer("word " * 50, add_special_tokens=False)["input_ids"])
    assert reply_budget(tokenizer, [long], "auto") == 16 * -(-int(1.25 * (longest + 1)) // 16)
    assert reply_budget(tokenizer, [long], 24) == 24


def test_a_reply_stops_at_a_stop_token_and_says_so(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    conversation = [[{"role": "user", "content": "hello"}]]
    running = reply(model, tokenizer, conversation, [2], max_new_tokens=5)
    assert running.new_tokens == [5] and running.stopped == [False]  # a random model does not say <|im_end|>
    prompt = tokenizer.apply_chat_template(
        conversation[0], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    first = int(model.generate(**prompt, max_new_tokens=1, do_sample=False, pad_token_id=2)[0, -1])
    stopping = reply(model, tokenizer, conversation, [first], max_new_tokens=5)  # its first token, taken as a stop
    assert stopping.stopped == [True] and stopping.new_tokens == [1] and stopping.texts == [""]
    rendered = tokenizer.apply_chat_template(conversation[0], add_generation_prompt=True, return_dict=True)
    assert stopping.prompt_tokens[0] == len(rendered["input_ids"])
