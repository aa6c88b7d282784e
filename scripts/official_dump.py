"""Extract a chat template from a public programmatic dump of a Hugging Face tokenizer_config.json.

The oracles under tests/data/official/ are byte-for-byte copies of a model repository's current
`chat_template`. The Hub is not reachable from here, so each oracle is taken from public code that
dumped the Hub file by program, and checked against a second such dump. This script decodes the
string literal in such a dump (never by hand) and prints its sha256, or writes it out:

  python scripts/official_dump.py python FILE 'Qwen/QwQ-32B'            # openvino.genai-style dict
  python scripts/official_dump.py js FILE 'library/qwq:32b' [--nth N]   # huggingface.js automap
  python scripts/official_dump.py json FILE 'config.tokenizer_config.chat_template'
  ... --out PATH writes the text exactly (no trailing newline added).

`python`: the file is parsed with `ast`; the first dict literal keyed by the model id whose value
has a "chat_template" gives the text. `js`: huggingface.js's chat-template-automap.ts lists
`{model: "...", gguf: "..."}` entries (the GGUF's tokenizer.chat_template, which llama.cpp's
converter copies from tokenizer_config.json); each string literal is decoded as JavaScript does.
`json`: a dotted path into a JSON document (an HF API snapshot).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
from pathlib import Path

_JS_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "`": "`",
}


def decode_js_string(literal: str) -> str:
    """The value of one JavaScript string literal, quotes included ('...', "..." or a template
    literal without substitutions), decoded as ECMAScript defines its escapes."""
    quote, body = literal[0], literal[1:-1]
    if quote not in "'\"`" or literal[-1] != quote:
        raise ValueError(f"not a string literal: {literal[:40]!r}")
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if quote == "`" and body.startswith("${", i):
            raise ValueError("template literal with a substitution")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _JS_SIMPLE_ESCAPES:
            out.append(_JS_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u" and body[i + 2] == "{":
            end = body.index("}", i)
            out.append(chr(int(body[i + 3 : end], 16)))
            i = end + 1
        elif nxt == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "\n":  # line continuation
            i += 2
        else:  # a needless escape stands for the character itself
            out.append(nxt)
            i += 2
    # UTF-16 surrogate pairs written as two \u escapes become one character.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")


_JS_STRING = r"""("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)"""
_JS_ENTRY = re.compile(
    r"model:\s*" + _JS_STRING + r",\s*gguf:\s*" + _JS_STRING,
    re.DOTALL,
)


def from_js_automap(text: str, model: str, nth: int) -> str:
    """The `gguf` template of the nth entry (0-based) whose `model` is this name."""
    found = [
        decode_js_string(m.group(2))
        for m in _JS_ENTRY.finditer(text)
        if decode_js_string(m.group(1)) == model
    ]
    if not found:
        raise SystemExit(f"no entry for model {model!r}")
    return found[nth]


def from_python_dict(text: str, model: str) -> str:
    """The chat_template under this model id in the first dict literal that has it."""
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == model:
                config = ast.literal_eval(value)
                template = config["chat_template"]
                if isinstance(template, str):
                    return template
    raise SystemExit(f"no dict entry for {model!r} with a chat_template")


def from_json(text: str, dotted: str) -> str:
    """The string at a dotted path of a JSON document."""
    node: object = json.loads(text)
    for part in dotted.split("."):
        if not isinstance(node, dict):
            raise SystemExit(f"{dotted}: {part!r} is under a non-object")
        node = node[part]
    if not isinstance(node, str):
        raise SystemExit(f"{dotted} is not a string")
    return node


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["python", "js", "json"])
    parser.add_argument("file", type=Path)
    parser.add_argument("key")
    parser.add_argument("--nth", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    text = args.file.read_text(encoding="utf-8")
    if args.kind == "python":
        template = from_python_dict(text, args.key)
    elif args.kind == "js":
        template = from_js_automap(text, args.key, args.nth)
    else:
        template = from_json(text, args.key)
    data = template.encode("utf-8")
    print(hashlib.sha256(data).hexdigest(), len(data))
    if args.out:
        args.out.write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
