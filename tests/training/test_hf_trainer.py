"""HF Trainer on a tiny config-built BertForSequenceClassification (no download):
autolog's train/loss is HF's own logged ``loss`` at logging_steps=1, for gradient
accumulation 1, 2 and 4, in the same run."""

from __future__ import annotations

import mlflow
import pytest
import torch

from helpers.training import flush, history
from helpers.training import quiet_autolog as _autolog

pytestmark = pytest.mark.slow  # transformers: seconds to import and to build a Trainer

STEPS = 5


class _Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int, vocab: int, length: int = 12) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, vocab, (n, length), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


@pytest.mark.parametrize("accumulation", [1, 2, 4])
def test_train_loss_equals_hf_trainers_logged_loss_under_gradient_accumulation(tmp_path, accumulation):
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    model = BertForSequenceClassification(config)
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"), per_device_train_batch_size=4,
        gradient_accumulation_steps=accumulation, max_steps=STEPS, logging_steps=1, learning_rate=1e-3,
        report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Tokens(4 * accumulation * STEPS, 50))
    _autolog()
    with mlflow.start_run() as run:
        trainer.train()
    flush()
    hf = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    assert [s for s, _ in hf] == list(range(1, STEPS + 1))
    ours = history(run.info.run_id, "train/loss")
    assert [s for s, _ in ours] == [s for s, _ in hf]
    # HF may round its logged loss to 4 decimals
    assert [v for _, v in ours] == pytest.approx([v for _, v in hf], abs=6e-5, rel=1e-5)
    per_s = dict(history(run.info.run_id, "train/samples_per_s"))
    times = dict(history(run.info.run_id, "train/step_time_s"))
    assert [round(per_s[s] * times[s], 6) for s in times] == [4 * accumulation] * len(times)
