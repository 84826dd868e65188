#!/usr/bin/env python3
"""Writes a random-weight Hugging Face model directory (config.json, model.safetensors, tokenizer files)
for benchmarks: python3 random_hf_model.py CONFIG.json TOKENIZER_DIR OUT_DIR.
Llama/Qwen2 parameter names; float32; weights N(0, 0.02) drawn from a small seeded block repeated
(a benchmark measures time and memory, not what the weights say); norms 1, biases 0. No numpy needed."""
import json, os, random, shutil, struct, sys, array

cfg_path, tok_dir, out = sys.argv[1:4]
cfg = json.load(open(cfg_path))
h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
hd = cfg.get("head_dim", h // heads)
vocab, bias = cfg["vocab_size"], cfg["model_type"] == "qwen2"
shapes = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,)}
if not cfg.get("tie_word_embeddings", False): shapes["lm_head.weight"] = (vocab, h)
for i in range(layers):
    p = f"model.layers.{i}."
    shapes.update({p + "self_attn.q_proj.weight": (heads * hd, h), p + "self_attn.k_proj.weight": (kv * hd, h),
                   p + "self_attn.v_proj.weight": (kv * hd, h), p + "self_attn.o_proj.weight": (h, heads * hd),
                   p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h), p + "mlp.down_proj.weight": (h, inter),
                   p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)})
    if cfg["model_type"] == "qwen3":
        shapes.update({p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,)})
    if bias:
        shapes.update({p + "self_attn.q_proj.bias": (heads * hd,), p + "self_attn.k_proj.bias": (kv * hd,), p + "self_attn.v_proj.bias": (kv * hd,)})
rng = random.Random(0)
block = array.array("f", (rng.gauss(0, 0.02) for _ in range(1 << 20))).tobytes()
header, offset = {}, 0
for name, shape in shapes.items():
    n = 1
    for d in shape: n *= d
    header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + 4 * n]}
    offset += 4 * n
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    hb = json.dumps(header).encode(); hb += b" " * (-len(hb) % 8)
    f.write(struct.pack("<Q", len(hb))); f.write(hb)
    for name, shape in shapes.items():
        size = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
        if name.endswith("norm.weight"): f.write(array.array("f", [1.0]).tobytes() * (size // 4)); continue
        if name.endswith(".bias"): f.write(b"\0" * size); continue
        while size > 0:
            chunk = block[: min(size, len(block))]; f.write(chunk); size -= len(chunk)
cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(tok_dir, f), out)
print(f"{out}: {sum(1 for _ in shapes)} tensors, {offset / 4 / 1e6:.1f}M parameters")
