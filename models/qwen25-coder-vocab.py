#!/usr/bin/env python3
"""Builds a vocab-only GGUF of Qwen2.5-Coder from llama.cpp's Qwen2 vocabulary.

llama.cpp ships `ggml-vocab-qwen2.gguf`: Qwen2's byte-level BPE (151,643
tokens and merges), its first three special tokens, and `[PAD…]` slots up to
151,935. Qwen2.5 and Qwen2.5-Coder use the same BPE and fill slots
151646-151664 with special tokens, among them the FIM and repository tokens
(`<|fim_prefix|>` = 151659 ... `<|file_sep|>` = 151664, as in
Qwen2.5-Coder's tokenizer_config.json). This script puts exactly those
tokens in those slots, as control tokens, and names the result
Qwen2.5-Coder, so the tests can check Weft's Qwen2.5-Coder prompts against a
real BPE with the real token ids. Runs with gguf-py from the same llama.cpp
source: `qwen25-coder-vocab.py GGUF_PY_DIR IN.gguf OUT.gguf`.
"""
import sys

sys.path.insert(0, sys.argv[1])
import gguf  # noqa: E402

ADDED = [
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]
FIRST_ADDED_ID = 151646
FIM_IDS = {"fim_pre": 151659, "fim_mid": 151660, "fim_suf": 151661, "fim_pad": 151662, "fim_rep": 151663, "fim_sep": 151664}

reader = gguf.GGUFReader(sys.argv[2])
tokens = reader.fields["tokenizer.ggml.tokens"].contents()
types = reader.fields["tokenizer.ggml.token_type"].contents()
tokens, types = list(tokens), list(types)
slots = range(FIRST_ADDED_ID, FIRST_ADDED_ID + len(ADDED))
if tokens[FIRST_ADDED_ID - 1] != "<|im_end|>" or any(not tokens[i].startswith("[PAD") for i in slots):
    sys.exit("not llama.cpp's Qwen2 vocabulary: unexpected tokens around id 151646")
for i, text in zip(slots, ADDED):
    tokens[i] = text
    types[i] = gguf.TokenType.CONTROL
assert tokens[FIM_IDS["fim_pre"]] == "<|fim_prefix|>" and tokens[FIM_IDS["fim_sep"]] == "<|file_sep|>"

writer = gguf.GGUFWriter(sys.argv[3], arch=reader.fields["general.architecture"].contents())
skip = {"general.architecture", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "general.name"}
for name, field in reader.fields.items():
    if name.startswith("GGUF.") or name in skip:
        continue
    main = field.types[0]
    sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
    writer.add_key_value(name, field.contents(), main, sub)
writer.add_name("Qwen2.5-Coder (vocab built from Qwen2's)")
writer.add_token_list(tokens)
writer.add_token_types(types)
for key, token_id in FIM_IDS.items():
    writer.add_uint32(f"tokenizer.ggml.{key}_token_id", token_id)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
