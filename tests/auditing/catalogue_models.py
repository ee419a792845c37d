"""The models of the audit catalogue: timm, transformers from configs and torch built-ins, all tiny, random init.

Each builder returns ``(model, example_input)``; the model is in eval mode.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F


def _timm(name: str, **kwargs):
    def build():
        import timm

        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()
        return model, torch.randn(2, 3, 32, 32)
    return build


def _hf(kind: str, **extra):
    def build():
        import transformers

        transformers.logging.set_verbosity_error()
        torch.manual_seed(0)
        ids = torch.randint(0, 100, (2, 6))
        common = dict(vocab_size=100, **extra)
        if kind == "bert":
            cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                          intermediate_size=64, max_position_embeddings=16, **common)
            return transformers.BertForMaskedLM(cfg).eval(), {"input_ids": ids}
        if kind == "gpt2":
            cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=16, bos_token_id=0,
                                          eos_token_id=0, **common)
            return transformers.GPT2LMHeadModel(cfg).eval(), {"input_ids": ids}
        if kind == "t5":
            cfg = transformers.T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2,
                                        decoder_start_token_id=0, **common)
            return transformers.T5ForConditionalGeneration(cfg).eval(), {"input_ids": ids,
                                                                         "decoder_input_ids": ids[:, :4]}
        cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16,
                                       bos_token_id=0, eos_token_id=0, **common)
        return transformers.LlamaForCausalLM(cfg).eval(), {"input_ids": ids}
    return build


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 32)
        layer = nn.TransformerEncoderLayer(32, 2, 64, batch_first=True, dropout=0.0)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.enc(self.inp(x)).mean(1))


class BilinearNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(6, 8)
        self.bil = nn.Bilinear(8, 8, 8)
        self.mid, self.head = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(F.relu(self.mid(F.relu(self.bil(self.a(x), self.b(x))))))


class GroupedConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pointwise = nn.Conv2d(8, 16, 1)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = F.relu(self.pointwise(self.depthwise(F.relu(self.grouped(h)))))
        return self.head(h.mean((2, 3)))


class Normed(nn.Module):
    """weight_norm (old or new style) and spectral_norm (new style) on Linear layers."""

    def __init__(self, old_style: bool):
        super().__init__()
        wn = torch.nn.utils.weight_norm if old_style else torch.nn.utils.parametrizations.weight_norm
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.a = wn(nn.Linear(8, 16))
        self.b = torch.nn.utils.parametrizations.spectral_norm(nn.Linear(16, 16))
        self.c, self.d, self.e = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.e(F.relu(self.d(F.relu(self.c(F.relu(self.b(F.relu(self.a(x)))))))))


class LoRALinear(nn.Module):
    """A frozen base Linear plus a low-rank update ``B A x`` (LoRA, Hu et al. 2021)."""

    def __init__(self, n_in: int, n_out: int, rank: int = 2):
        super().__init__()
        self.base = nn.Linear(n_in, n_out)
        self.lora_a = nn.Linear(n_in, rank, bias=False)
        self.lora_b = nn.Linear(rank, n_out, bias=False)
        nn.init.normal_(self.lora_b.weight, std=0.1)

    def forward(self, x):
        return self.base(x) + self.lora_b(self.lora_a(x))


class LoRANet(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = LoRALinear(8, 16), LoRALinear(16, 3)

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 8, batch_first=True)
        self.gru = nn.GRU(8, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h, _ = self.lstm(x)
        h, _ = self.gru(h)
        return self.head(h[:, -1])


class Head(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = weight


class TiedHead(nn.Module):
    """An output head tied to the embedding by holding its Parameter, used as ``h @ head.weight.T``."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.mid1, self.mid2, self.mid3 = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16)
        self.head = Head(self.emb.weight)

    def forward(self, x):
        return F.relu(self.mid3(F.relu(self.mid2(F.relu(self.mid1(self.emb(x))))))) @ self.head.weight.T


def _torch(cls, shape, *args, dtype=None):
    def build():
        torch.manual_seed(0)
        model = cls(*args).eval()
        x = torch.randint(0, 100, shape) if dtype == "ids" else torch.randn(*shape)
        return model, x
    return build


#: name -> (builder, heavy): heavy models run only with the ``slow`` mark
CATALOGUE = {
    "timm-mobilenetv3_small_050": (_timm("mobilenetv3_small_050"), False),
    "timm-regnetx_002": (_timm("regnetx_002"), False),
    "timm-convnext_atto": (_timm("convnext_atto"), True),
    "timm-deit_tiny": (_timm("deit_tiny_patch16_224", img_size=32, depth=2), False),
    "hf-bert": (_hf("bert"), False),
    "hf-gpt2": (_hf("gpt2"), False),
    "hf-t5": (_hf("t5"), False),
    "hf-llama-tied": (_hf("llama", tie_word_embeddings=True), False),
    "hf-llama-untied": (_hf("llama", tie_word_embeddings=False), False),
    "transformer-encoder": (_torch(Encoder, (2, 5, 8)), False),
    "bilinear": (_torch(BilinearNet, (4, 6)), False),
    "grouped-depthwise-conv": (_torch(GroupedConvs, (2, 3, 8, 8)), False),
    "weight-norm-old": (_torch(Normed, (4, 8), True), False),
    "weight-norm-new": (_torch(Normed, (4, 8), False), False),
    "lora": (_torch(LoRANet, (4, 8)), False),
    "lstm-gru": (_torch(Recurrent, (2, 5, 6)), False),
    "tied-custom-head": (_torch(TiedHead, (2, 5), dtype="ids"), False),
}
