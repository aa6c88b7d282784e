"""One profile, every engine: a catalog variant as llama.cpp flags and preset, as the files of a
Hugging Face GGUF repository (which `ollama run hf.co/...` and `llama-cli -hf` read), and as vLLM's
generation config.

Every value comes from the variant's parameters. A sampling parameter the catalog leaves unset
takes the value Ollama v0.24.0 uses (`api/types.go` defaults), because that is what the variant
does on Ollama. The other engines' defaults differ (llama.cpp's min_p is not 0, Ollama's
repeat_penalty is 1.1), so every sampling value is written out explicitly, never left to an
engine's default. Nothing here prints; files are rendered in full before any is written.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwq_ollama.atomic import write_folder
from qwq_ollama.catalog.render import hf_prompter, render_variant
from qwq_ollama.catalog.schema import Catalog, Variant, Weights
from qwq_ollama.errors import InputError

# Ollama v0.24.0's values for what a Modelfile leaves unset (api/types.go:1070-1096).
OLLAMA_SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.1,
    "repeat_last_n": 64,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}

LLAMA_CPP_BINARIES = ("llama-cli", "llama-completion", "llama-server")

# llama.cpp's default chain (common/common.h; `--samplers` help text).
LLAMA_CPP_DEFAULT_ORDER = (
    "penalties",
    "dry",
    "top_n_sigma",
    "top_k",
    "typ_p",
    "top_p",
    "min_p",
    "xtc",
    "temperature",
)
# The guide's string, verbatim. Kept for the comment it earns below; never emitted.
GUIDE_LITERAL_ORDER = ("top_k", "top_p", "min_p", "temperature", "dry", "typ_p", "xtc")
# The order emitted whenever a repetition penalty or DRY is active.
#
# The guide wants the repetition penalty applied *after* the truncation samplers instead of first
# (llama.cpp's default starts with it), and writes that as
# `--samplers "top_k;top_p;min_p;temperature;dry;typ_p;xtc"`. But llama.cpp builds the chain from
# the listed steps only, and `penalties` is one of those steps (common/sampling.cpp adds the
# penalties sampler only for a `penalties` entry; the default list starts with it). Copied
# literally, that string drops the penalty: `--repeat-penalty 1.1` then does nothing and the run is
# silently the no-penalty profile, which is not what the guide measured or recommends.
#
# What the guide means: top_k, top_p and min_p first choose the plausible tokens from the model's
# own, unpenalised distribution; only then does the penalty re-rank those candidates. It can no
# longer push down the frequent tokens code is made of (brackets, indentation, names already used)
# until junk from the tail enters the candidate set, which is the failure the guide shows with the
# default order. `penalties` sits right after min_p, before temperature: the penalty scales a
# token's logit by a factor that depends on the logit's sign and temperature divides every logit by
# the same positive number, so the two commute and "before temperature" equals "after temperature";
# this position keeps the guide's tail (temperature;dry;typ_p;xtc) exactly as written.
PENALTY_ORDER = ("top_k", "top_p", "min_p", "penalties", "temperature", "dry", "typ_p", "xtc")
# `--sampler-seq` letters (common/sampling.cpp common_sampler_type_to_chr); a preset file needs
# them because llama.cpp's INI reader ends a value at ';' (a comment), so `samplers = a;b` breaks.
SAMPLER_LETTERS = {
    "penalties": "e",
    "dry": "d",
    "top_n_sigma": "s",
    "top_k": "k",
    "typ_p": "y",
    "top_p": "p",
    "min_p": "m",
    "xtc": "x",
    "temperature": "t",
}

PRESET_NAME = "preset.ini"
# llama-server's parser that returns the reasoning apart from the answer (`reasoning_content`).
LLAMA_SERVER_REASONING_FORMAT = "deepseek"


def _variant(catalog: Catalog, variant: Variant | str) -> Variant:
    return catalog.variant(variant) if isinstance(variant, str) else variant


def effective_parameters(variant: Variant) -> dict[str, Any]:
    """The variant's parameters over Ollama's defaults: what the variant runs with on Ollama."""
    return {**OLLAMA_SAMPLING_DEFAULTS, **variant.parameters.as_dict()}


def _num(value: float | int) -> str:
    """A number as llama.cpp and INI files take it: ints bare, floats with a decimal point."""
    if isinstance(value, bool):
        raise TypeError("not a number")
    return str(value) if isinstance(value, int) else repr(float(value))


def penalty_window(params: Mapping[str, Any]) -> int:
    """Ollama's repeat_last_n as llama.cpp's `--repeat-last-n`.

    Ollama hands the value straight to llama.cpp's penalties sampler, which clamps a negative
    window to 0 (off); llama.cpp's own CLI would read -1 as "the whole context". So -1 becomes 0.
    """
    return max(int(params["repeat_last_n"]), 0)


def penalties_active(params: Mapping[str, Any]) -> bool:
    """Whether llama.cpp's penalties step changes anything at these values."""
    changes = (
        params["repeat_penalty"] != 1.0
        or params["presence_penalty"] != 0.0
        or params["frequency_penalty"] != 0.0
    )
    return changes and penalty_window(params) > 0


def _step_effect(step: str, params: Mapping[str, Any], dry_multiplier: float) -> str | None:
    """What one sampler step does at these values, or None if it is a no-op."""
    if step == "top_k":
        return f"top_k {params['top_k']}" if params["top_k"] > 0 else None
    if step == "top_p":
        return f"top_p {_num(params['top_p'])}" if params["top_p"] < 1.0 else None
    if step == "min_p":
        return f"min_p {_num(params['min_p'])}" if params["min_p"] > 0.0 else None
    if step == "typ_p":
        return f"typ_p {_num(params['typical_p'])}" if params["typical_p"] < 1.0 else None
    if step == "temperature":
        temp = params["temperature"]
        return f"temperature {_num(temp)}" if temp > 0 else "temperature 0 (greedy)"
    if step == "dry":
        return f"dry {_num(dry_multiplier)}" if dry_multiplier > 0 else None
    if step == "penalties":
        if not penalties_active(params):
            return None
        parts = [f"repeat {_num(params['repeat_penalty'])}"]
        if params["presence_penalty"]:
            parts.append(f"presence {_num(params['presence_penalty'])}")
        if params["frequency_penalty"]:
            parts.append(f"frequency {_num(params['frequency_penalty'])}")
        return f"penalties ({', '.join(parts)}; last {penalty_window(params)} tokens)"
    return None  # top_n_sigma and xtc: this tool never switches them on


def samplers_run(
    order: tuple[str, ...], params: Mapping[str, Any], dry_multiplier: float = 0.0
) -> tuple[list[str], list[str]]:
    """(steps that act, in order; listed steps that are no-ops at these values)."""
    active: list[str] = []
    idle: list[str] = []
    for step in order:
        effect = _step_effect(step, params, dry_multiplier)
        if effect is None:
            idle.append(step)
        else:
            active.append(effect)
    return active, idle


@dataclass(frozen=True)
class ExportedCommand:
    """A command line: `argv` to run, `shell` as one quoted line, `comment` as `# ` lines.

    `script` is the comment plus the command with one option per line and ` \\` continuations,
    ready to paste into a POSIX shell (shlex.split does not understand continuations; `shell`
    is the form it reads back).
    """

    argv: list[str]
    comment: str
    chunks: tuple[tuple[str, ...], ...]

    @property
    def shell(self) -> str:
        return shlex.join(self.argv)

    @property
    def script(self) -> str:
        body = " \\\n    ".join(shlex.join(chunk) for chunk in self.chunks)
        return f"{self.comment}\n{body}\n"


def default_template_path(catalog: Catalog, variant: Variant | str) -> Path:
    """The HF chat template `qwq-ollama render` writes for the variant, next to the catalog."""
    return catalog.path.parent / f"{_variant(catalog, variant).name}.chat_template.jinja"


def default_model_path(weights: Weights) -> str:
    """Where the guide's download step puts the GGUF (`snapshot_download(local_dir=...)`)."""
    if weights.source == "hf" and weights.hf_repo:
        owner, name = weights.hf_repo.split("/", 1)
        stem = name[:-5] if name.lower().endswith("-gguf") else name
        return f"{owner}-{name}/{stem}-{weights.hf_quant}.gguf"
    if weights.source in ("gguf", "builtin"):
        return weights.modelfile_from
    return "PATH/TO/MODEL.gguf"


def _binary_kind(binary: str) -> str:
    kind = Path(binary).name
    if kind not in LLAMA_CPP_BINARIES:
        raise InputError(
            f"unknown llama.cpp program {binary!r}: use one of {', '.join(LLAMA_CPP_BINARIES)}",
            field="--binary",
        )
    return kind


def _sampling_chunks(
    params: Mapping[str, Any], variant: Variant, dry_multiplier: float
) -> list[tuple[str, ...]]:
    chunks: list[tuple[str, ...]] = [
        ("--temp", _num(params["temperature"])),
        ("--top-k", _num(params["top_k"])),
        ("--top-p", _num(params["top_p"])),
        # Always explicit: llama.cpp's own min_p default is not 0 (0.1 in the guide's day).
        ("--min-p", _num(params["min_p"])),
    ]
    given = variant.parameters.as_dict()
    if "typical_p" in given:
        chunks.append(("--typical", _num(params["typical_p"])))
    chunks.append(("--repeat-penalty", _num(params["repeat_penalty"])))
    if "repeat_last_n" in given:
        chunks.append(("--repeat-last-n", str(penalty_window(params))))
    if "presence_penalty" in given:
        chunks.append(("--presence-penalty", _num(params["presence_penalty"])))
    if "frequency_penalty" in given:
        chunks.append(("--frequency-penalty", _num(params["frequency_penalty"])))
    if dry_multiplier > 0:
        chunks.append(("--dry-multiplier", _num(dry_multiplier)))
    if "seed" in given:
        chunks.append(("--seed", str(params["seed"])))
    if "num_predict" in given:
        chunks.append(("-n", str(params["num_predict"])))
    return chunks


# Runner options Ollama and llama.cpp share, with llama.cpp's flag.
_RUNNER_FLAGS = {
    "num_gpu": "--n-gpu-layers",
    "num_thread": "--threads",
    "num_batch": "--batch-size",
}


def sampler_order(params: Mapping[str, Any], dry_multiplier: float = 0.0) -> tuple[str, ...] | None:
    """The order to emit: PENALTY_ORDER when a penalty or DRY acts, else None (llama.cpp's
    default, whose first step, penalties, is then a no-op)."""
    return PENALTY_ORDER if penalties_active(params) or dry_multiplier > 0 else None


def _sampler_comment(
    params: Mapping[str, Any], dry_multiplier: float, flag: str = "--samplers"
) -> tuple[tuple[str, ...] | None, list[str]]:
    """The sampler order to emit (None: keep llama.cpp's default) and its `# ` comment lines."""
    if sampler_order(params, dry_multiplier) is not None:
        active, idle = samplers_run(PENALTY_ORDER, params, dry_multiplier)
        lines = [
            f"# samplers run: {' > '.join([*active, 'dist'])}",
            f"# {flag} puts the penalty after top_k/top_p/min_p as the guide intends; the "
            "guide's literal",
            '# "' + ";".join(GUIDE_LITERAL_ORDER) + '" would leave `penalties` out of the '
            "chain: no penalty at all",
        ]
        if idle:
            lines.append(f"# listed but a no-op at these values: {', '.join(idle)}")
        return PENALTY_ORDER, lines
    active, _ = samplers_run(LLAMA_CPP_DEFAULT_ORDER, params)
    return None, [
        f"# samplers run: {' > '.join([*active, 'dist'])}",
        f"# (llama.cpp's default order, no {flag} needed: its first step, penalties, is a no-op",
        f"# at repeat-penalty {_num(params['repeat_penalty'])} with no presence/frequency penalty)",
    ]


def llama_cpp_command(
    catalog: Catalog,
    variant: Variant | str,
    *,
    binary: str = "llama-cli",
    model_path: str,
    template_path: str,
    prompt: str | None = None,
    dry_multiplier: float = 0.0,
    host: str | None = None,
    port: int | None = None,
) -> ExportedCommand:
    """The llama.cpp command that runs `variant` with the settings it has on Ollama.

    With `prompt`, the guide's one-shot form: the variant's HF template applied to one user
    message, passed with `--prompt` and `-no-cnv` (llama-cli; llama-completion in newer builds).
    llama-server also gets `--reasoning-format deepseek` (the reasoning arrives apart, in
    `reasoning_content`, as Ollama's `message.thinking`), `--no-prefill-assistant` (by default
    it continues a final assistant message instead of closing it: a prompt neither the HF
    template nor Ollama builds; measured on b10488) and, when given, `--host`/`--port`.
    """
    chosen = _variant(catalog, variant)
    kind = _binary_kind(binary)
    _check_request(kind, prompt, dry_multiplier, host, port)
    params = effective_parameters(chosen)
    given = chosen.parameters.as_dict()
    chunks: list[tuple[str, ...]] = [
        (binary,),
        ("--model", model_path),
        ("--ctx-size", str(params["num_ctx"])),
    ]
    chunks += [(flag, _num(given[name])) for name, flag in _RUNNER_FLAGS.items() if name in given]
    chunks += _sampling_chunks(params, chosen, dry_multiplier)
    order, sampler_lines = _sampler_comment(params, dry_multiplier)
    if order is not None:
        chunks.append(("--samplers", ";".join(order)))
    chunks += [("--jinja",), ("--chat-template-file", template_path)]
    if chosen.family.switch == "enable_thinking":
        # llama.cpp passes its own enable_thinking (on unless told) and it wins over the
        # template's default for the variant: state the variant's.
        switch = json.dumps({"enable_thinking": chosen.enable_thinking}, separators=(",", ":"))
        chunks.append(("--chat-template-kwargs", switch))
    if kind == "llama-server":
        chunks += [
            ("--reasoning-format", LLAMA_SERVER_REASONING_FORMAT),
            ("--no-prefill-assistant",),
        ]
        if chosen.think_budget is not None:
            # b11076: the sampler counts tokens after the template's think tag and, at N,
            # forces the message and the close tag (common/reasoning-budget.cpp).
            chunks += [
                ("--reasoning-budget", str(chosen.think_budget)),
                ("--reasoning-budget-message", chosen.family.early_stop_message),
            ]
        chunks += [
            (flag, str(value))
            for flag, value in (("--host", host), ("--port", port))
            if value is not None
        ]
    if prompt is not None:
        rendered = hf_prompter(catalog, chosen)([{"role": "user", "content": prompt}])
        # The prompt goes through verbatim (real newlines, shell-quoted), so llama.cpp's escape
        # processing (on by default) must not touch backslashes in it.
        chunks += [("--no-escape",), ("-no-cnv",), ("--prompt", rendered)]
    comment = _command_comment(chosen, params, kind, prompt is not None, sampler_lines)
    argv = [token for chunk in chunks for token in chunk]
    return ExportedCommand(argv, comment, tuple(chunks))


def _check_request(
    kind: str, prompt: str | None, dry_multiplier: float, host: str | None, port: int | None
) -> None:
    if prompt is not None and kind == "llama-server":
        raise InputError(
            "--prompt is for llama-cli or llama-completion; llama-server takes prompts over HTTP",
            field="--prompt",
        )
    if (host is not None or port is not None) and kind != "llama-server":
        raise InputError("--host and --port are for llama-server", field="--port")
    if port is not None and not 0 < port < 65536:
        raise InputError(f"port must be 1-65535 (got {port})", field="--port")
    if dry_multiplier < 0:
        raise InputError(
            f"dry multiplier must be >= 0 (got {dry_multiplier})", field="--dry-multiplier"
        )


def context_notes(
    catalog: Catalog, variant: Variant | str, *, binary: str, model_path: str
) -> list[str]:
    """What llama-server does with the context that the command line does not show.

    llama-server caps each slot's context at the one the model was trained with (measured on
    b10488: `--ctx-size 16384` over SmolLM2, trained with 8192, serves n_ctx 8192 and logs "the
    slot context (16384) exceeds the training context of the model (8192) - capping"), as Ollama
    clamps num_ctx. Read from the GGUF's header when the file is here; nothing otherwise.
    """
    wanted = effective_parameters(_variant(catalog, variant))["num_ctx"]
    if _binary_kind(binary) != "llama-server" or not Path(model_path).is_file():
        return []
    from qwq_ollama.artifacts.gguf import inspect_gguf

    trained = inspect_gguf(model_path).context_length
    if trained is None or wanted <= trained:
        return []
    return [
        f"{model_path} was trained with a context of {trained} tokens: llama-server caps "
        f"--ctx-size {wanted} to {trained} (its /props reports n_ctx {trained}), as Ollama "
        f"clamps num_ctx"
    ]


def llama_server_settings(
    catalog: Catalog, variant: Variant | str, *, dry_multiplier: float = 0.0
) -> dict[str, Any]:
    """What llama-server's /props (`default_generation_settings.params`) reports when it runs the
    command above: every sampling value, and the sampler chain by its step names."""
    chosen = _variant(catalog, variant)
    params = effective_parameters(chosen)
    given = chosen.parameters.as_dict()
    expected: dict[str, Any] = {
        name: params[name]
        for name in (
            "temperature",
            "top_k",
            "top_p",
            "min_p",
            "typical_p",
            "repeat_penalty",
            "presence_penalty",
            "frequency_penalty",
        )
    }
    expected |= {
        "repeat_last_n": penalty_window(params),
        "dry_multiplier": dry_multiplier,
        "samplers": list(sampler_order(params, dry_multiplier) or LLAMA_CPP_DEFAULT_ORDER),
    }
    if "seed" in given:
        expected["seed"] = params["seed"] % 2**32  # llama.cpp shows it unsigned: -1 is 2**32-1
    if "num_predict" in given:
        expected["n_predict"] = params["num_predict"]
    return expected


def _command_comment(
    variant: Variant, params: Mapping[str, Any], kind: str, one_shot: bool, sampler_lines: list[str]
) -> str:
    lines = [
        f"# {variant.name}: {variant.description}".rstrip(),
        "# settings as on Ollama (from the catalog; unset ones at Ollama v0.24.0's "
        "defaults), all explicit",
        *sampler_lines,
    ]
    stops = params.get("stop") or []
    if stops:
        lines.append(
            f"# stop: llama.cpp ends at the model's end-of-generation tokens; Ollama also "
            f"stops at {', '.join(map(repr, stops))}"
        )  # repr: a line break stays here
    if kind == "llama-server":
        lines += [
            "# llama-server: these are defaults; a request's own sampling fields override them",
            "# --reasoning-format deepseek: the reasoning comes back apart from the answer, "
            "in reasoning_content",
            "# --no-prefill-assistant: a final assistant message is a finished turn, as in "
            "the HF template and on Ollama",
            "# (llama-server would otherwise continue it)",
        ]
        if variant.think_budget is not None:
            lines.append(
                f"# --reasoning-budget {variant.think_budget}: the thinking stops at "
                "that many tokens, then the family's early-stop sentence and "
                f"{variant.family.think_close} (a request may set "
                "thinking_budget_tokens)"
            )
    if one_shot and kind == "llama-cli":
        lines.append(
            "# newer llama.cpp builds refuse -no-cnv in llama-cli: use --binary "
            "llama-completion there"
        )
    return "\n".join(lines)


def llama_cpp_preset(
    catalog: Catalog, variant: Variant | str, *, dry_multiplier: float = 0.0
) -> str:
    """The variant's sampling as a llama.cpp INI preset (docs/preset.md), to load as llama.cpp's
    user config (`~/.config/llama.cpp/config.ini`): keys before any section header are the
    defaults every llama.cpp program starts with, and command-line flags override them.

    Only sampling goes in: a user config applies to every model, so the context size and the chat
    template stay on the command line (named in the header). Not for the root of a GGUF
    repository: llama.cpp b10488 takes a repository's preset.ini alone, as a router preset, and
    `llama-server -hf <repo>` then loads no model (measured; see docs/llama-cpp.md).
    """
    chosen = _variant(catalog, variant)
    params = effective_parameters(chosen)
    given = chosen.parameters.as_dict()
    order, sampler_lines = _sampler_comment(params, dry_multiplier, flag="sampler-seq")
    on_command_line = (
        f"--ctx-size {params['num_ctx']}"
        + (f" -n {params['num_predict']}" if "num_predict" in given else "")
        + (f" --chat-template-file {chosen.name}.chat_template.jinja")
    )
    lines = [
        f"; llama.cpp preset for {chosen.name}, written by qwq-ollama from {catalog.path.name}.",
        "; Load it as llama.cpp's user config: copy it to ~/.config/llama.cpp/config.ini",
        "; ($XDG_CONFIG_HOME/llama.cpp/config.ini). Command-line flags override it; give "
        "these there:",
        f";   {on_command_line}",
        "; Not at the root of a GGUF repository: `llama-server -hf <repo>` then loads no "
        "model (b10488).",
        *(";" + line[1:] for line in sampler_lines),
        "",
        "jinja = true",
    ]
    for chunk in _sampling_chunks(params, chosen, dry_multiplier):
        flag, value = chunk
        if flag != "-n":
            lines.append(f"{flag.lstrip('-')} = {value}")
    if order is not None:
        letters = "".join(SAMPLER_LETTERS[s] for s in order)
        # llama.cpp's INI reader ends a value at ';', so `samplers = a;b` cannot be written.
        lines += [
            f"; sampler-seq is --samplers in letters: {letters} = {';'.join(order)}",
            f"sampler-seq = {letters}",
        ]
    return "\n".join(lines) + "\n"


def write_llama_cpp_preset(
    catalog: Catalog, variant: Variant | str, out_dir: Path, *, dry_multiplier: float = 0.0
) -> Path:
    """Write `preset.ini` into `out_dir` atomically; returns its path."""
    text = llama_cpp_preset(catalog, variant, dry_multiplier=dry_multiplier)
    return write_folder(out_dir, {PRESET_NAME: text})[0]


def ollama_params(variant: Variant) -> dict[str, Any]:
    """The `params` file of a Hugging Face GGUF repository: Ollama's parameter names -> values."""
    return variant.parameters.as_dict()


def hf_files(catalog: Catalog, variant: Variant | str) -> dict[str, str]:
    """Name -> content of every file `export_hf` writes."""
    chosen = _variant(catalog, variant)
    rendered = render_variant(catalog, chosen)
    files = {
        "params": json.dumps(ollama_params(chosen), indent=2, ensure_ascii=False) + "\n",
        "template": rendered.ollama_template,
        "chat_template.jinja": rendered.hf_template,
    }
    if chosen.system is not None:
        files["system"] = chosen.system
    return files


def export_hf(catalog: Catalog, variant: Variant | str, out_dir: Path) -> list[Path]:
    """The files a Hugging Face GGUF repository carries so that `ollama run hf.co/<repo>` uses
    this variant's template and parameters (`template`, `params`, `system`), plus its HF chat
    template. No `preset.ini`: at a repository's root it makes llama.cpp (b10488) ignore the
    repository's GGUF (see llama_cpp_preset). Returns the written paths.
    """
    return write_folder(Path(out_dir), hf_files(catalog, variant))
