"""Jinja chat templates for the offline tokenizers the tiny checkpoints ship with.

They reproduce the prompt layout of the real models (GLM-4.6V-Flash and Qwen2-VL),
so the engine's prompt code is exercised exactly as it would be against real
checkpoints: `apply_chat_template` decides where image placeholders go.
"""

from __future__ import annotations

# GLM-4.6V: `[gMASK]<sop>`, one role token per turn followed by a newline, image
# placeholders inline in the user turn. Thinking is switched off the way the real
# template does it: `/nothink` after the last user message and an empty
# `<think></think>` block opening the assistant turn.
GLM4V_CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{%- set nothink = enable_thinking is defined and not enable_thinking -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'system' -%}<|system|>{{ '\\n' }}"
    "{%- elif m.role == 'user' -%}<|user|>{{ '\\n' }}"
    "{%- else -%}<|assistant|>{{ '\\n' }}<think></think>{{ '\\n' }}"
    "{%- endif -%}"
    "{%- if m.content is string -%}{{ m.content }}"
    "{%- else -%}{%- for part in m.content -%}"
    "{%- if part.type == 'image' -%}<|begin_of_image|><|image|><|end_of_image|>"
    "{%- elif part.type == 'video' -%}<|begin_of_video|><|video|><|end_of_video|>"
    "{%- elif part.type == 'text' -%}{{ part.text }}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if m.role == 'user' and loop.last and nothink -%}/nothink{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{{ '\\n' }}"
    "{%- if nothink -%}<think></think>{{ '\\n' }}{%- endif -%}"
    "{%- endif -%}"
)

# Qwen2-VL: ChatML turns, a default system turn, `<|vision_start|><|image_pad|><|vision_end|>`.
QWEN2_VL_CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if loop.first and m.role != 'system' -%}"
    "<|im_start|>system{{ '\\n' }}You are a helpful assistant.<|im_end|>{{ '\\n' }}"
    "{%- endif -%}"
    "<|im_start|>{{ m.role }}{{ '\\n' }}"
    "{%- if m.content is string -%}{{ m.content }}"
    "{%- else -%}{%- for part in m.content -%}"
    "{%- if part.type == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part.type == 'text' -%}{{ part.text }}"
    "{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}"
)
