"""The SFT training data: the train file read, every conversation tokenised with the student's training chat
template (loss on the assistant turn, EOS inside it: `chat_template.py`), examples over the recipe's `max_length`
dropped, never truncated (a truncated trace has no answer and no EOS, and would teach the student to ramble).
"""

from __future__ import annotations

from dataclasses import dataclass

from valley_assets.training.chat_template import TrainingDataError, tokenize_conversation, validate_messages


def load_training_rows(train_file: str):
    """The train file as a `datasets.Dataset` (local path or fsspec URL, same `load_dataset` call)."""
    from datasets import load_dataset

    dataset = load_dataset("json", data_files=train_file, split="train")
    if "messages" not in dataset.column_names:
        raise TrainingDataError(f"{train_file}: rows need a 'messages' field, found columns {dataset.column_names}")
    if len(dataset) == 0:
        raise TrainingDataError(f"{train_file}: no rows")
    return dataset


def tokenize_rows(dataset, tokenizer, chat_template: str, max_length: int, num_proc: int | None):
    """Tokenize every row (assistant mask + EOS); drop rows over `max_length`. Returns (dataset, n_dropped)."""

    def encode(row, index):
        messages = validate_messages(row["messages"], index)
        encoded = tokenize_conversation(tokenizer, messages, chat_template, index)
        return {**encoded, "n_tokens": len(encoded["input_ids"]), "n_trained": sum(encoded["assistant_masks"])}

    # `messages` is kept: TRL checks that the dataset is conversational before honouring assistant_only_loss, and
    # skips its own tokenization because `input_ids` is present. It is dropped from batches (not a model input).
    tokenized = dataset.map(encode, with_indices=True, num_proc=num_proc, desc="tokenizing")
    kept = tokenized.filter(lambda n: n <= max_length, input_columns="n_tokens", num_proc=num_proc)
    dropped = len(tokenized) - len(kept)
    if len(kept) == 0:
        longest = max(tokenized["n_tokens"])
        raise TrainingDataError(f"every example is longer than max_length={max_length} tokens (longest: {longest})")
    return kept, dropped


@dataclass
class TrainingData:
    dataset: object  # datasets.Dataset: messages, input_ids, assistant_masks (what SFTTrainer takes)
    dropped: int  # examples longer than max_length
    tokens_per_epoch: int
    trained_tokens_per_epoch: int  # the tokens in the loss (assistant turns)


def prepare_training_data(train_file: str, tokenizer, chat_template: str, max_length: int,
                          num_proc: int | None) -> TrainingData:
    """The train file, tokenised and filtered (`tokenize_rows`), with its token counts."""
    dataset, dropped = tokenize_rows(load_training_rows(train_file), tokenizer, chat_template, max_length, num_proc)
    tokens_per_epoch = int(sum(dataset["n_tokens"]))
    trained_tokens_per_epoch = int(sum(dataset["n_trained"]))
    return TrainingData(dataset.remove_columns(["n_tokens", "n_trained"]), dropped, tokens_per_epoch,
                        trained_tokens_per_epoch)
