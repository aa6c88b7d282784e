"""What changed between the pinned Ollama releases, checked on each live daemon where it applies:
`typical_p` refused at create from 0.34, the token-repeat guard's error from 0.34, and sampler
defaults read from a GGUF's `general.sampling.*` from 0.33.3.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest
import yaml
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.checks.doctor import diagnose
from qwq_ollama.checks.generation import REPEAT_LIMIT, generate_watched, run_chat
from qwq_ollama.checks.validate import check_registration
from qwq_ollama.daemon.answers import Shown
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import Registrar, base_model_name
from qwq_ollama.engines.install import OllamaBinary
from qwq_ollama.engines.private_daemon import OllamaDaemon
from qwq_ollama.errors import InputError
from qwq_ollama.facts import GGUF_SAMPLING_SINCE, TYPICAL_P_REFUSED_SINCE, at_least

from .conftest import ROOT, run_cli
from .test_gguf_info import write_qwen2

SMALL = "smollm2-135m"


def add_variant(
    project: Path,
    name: str,
    parameters: dict[str, object],
    weights: dict[str, object] | None = None,
    open_default: str | None = None,
    extends: str | None = "qwq-fixed",
) -> Path:
    """The project copy's catalog plus one variant (and, if given, one weights entry), and
    every variant its default set.

    `open_default`: a parameter taken out of `defaults`, kept in every other variant."""
    catalog_file = project / "modelfiles" / "models.yaml"
    data = yaml.safe_load(catalog_file.read_text())
    if open_default is not None:
        value = data["defaults"]["parameters"].pop(open_default)
        for variant in data["variants"].values():
            variant.setdefault("parameters", {})[open_default] = value
    data["variants"][name] = {"parameters": parameters} | ({"extends": extends} if extends else {})
    data.pop("default_variants", None)  # the new variant is checked too where none is named
    if weights:
        data["weights"].update(weights)
    catalog_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return catalog_file


def test_typical_p_is_refused_up_front_where_the_daemon_refuses_it(
    api: OllamaAPI, daemon: OllamaDaemon, project_copy: Path
) -> None:
    name = "typical-probe"
    catalog_file = add_variant(project_copy, name, {"typical_p": 0.9})
    version = api.version()
    result = run_cli(
        "create", name, "--weights", SMALL, "--catalog", str(catalog_file), "--host", daemon.host
    )
    try:
        if at_least(version, TYPICAL_P_REFUSED_SINCE):
            assert result.returncode == 2, result.stderr
            line = load_catalog(catalog_file).line_of("variants", name, "parameters", "typical_p")
            assert result.stderr.strip().splitlines()[-1] == (
                f"Error: {catalog_file}:{line}: variants.{name}.parameters.typical_p: Ollama "
                f"{version} at {daemon.host} refuses typical_p (no longer supported from "
                "0.34.0); remove it from the catalog"
            )
            assert api.show(name) is None  # nothing half-registered
        else:
            assert result.returncode == 0, result.stderr
            assert "typical_p" in (api.show(name) or Shown()).parameters
    finally:
        api.delete(name)


# At temperature 0 the small model continues this with a run of "1" chunks: identical to the
# daemon's guard, and no loop to our detector, which lets a letterless block repeat for 2000
# characters (tables, rules) before calling it one.
REPEAT_PROMPT = "!" * 56


def repeating_model(api: OllamaAPI, registered: object) -> str:
    """The small model with a raw template: the user's text is all the prompt."""
    name = "repeat-probe"
    base = base_model_name(load_catalog(ROOT / "modelfiles" / "models.yaml").weights_named(SMALL))
    for _ in api.create(
        name,
        from_=base,
        template="{{ range .Messages }}{{ .Content }}{{ end }}",
        parameters={"temperature": 0.0, "repeat_penalty": 1.0, "top_k": 1},
    ):
        pass
    return name


def test_the_token_repeat_guard_reads_as_a_loop_not_a_crash(
    api: OllamaAPI, registered: object
) -> None:
    """v0.34 ends a run of identical chunks with an error, earlier releases by closing the
    stream without a final chunk: either way the run ended in a loop, never a crash."""
    model = repeating_model(api, registered)
    messages = [{"role": "user", "content": REPEAT_PROMPT}]
    result = run_chat(api, model, messages, options={"num_predict": 400, "seed": 1})
    assert result.done_reason == REPEAT_LIMIT
    assert result.content.endswith("1" * 20)
    if at_least(api.version(), (0, 34, 0)):
        assert "token repeat limit reached" in (result.stopped_early or "")
    else:
        assert "without a final chunk" in (result.stopped_early or "")
    watched, verdict = generate_watched(
        api, model, REPEAT_PROMPT, options={"num_predict": 400, "seed": 1}
    )
    assert watched.done_reason == REPEAT_LIMIT
    assert verdict is not None and verdict.kind == "repeat_limit"  # validate and compare: a loop


def gguf_with_sampling(source: Path, target: Path) -> Path:
    """The small GGUF plus sampler defaults a model author might ship."""
    reader = gguf.GGUFReader(source)
    arch = str(reader.get_field(gguf.Keys.General.ARCHITECTURE).contents())  # type: ignore[union-attr]
    writer = gguf.GGUFWriter(str(target), arch=arch, endianess=reader.endianess)
    copy_with_new_metadata(
        reader,
        writer,
        {
            "general.sampling.penalty_last_n": MetadataDetails(gguf.GGUFValueType.INT32, 7),
            "general.sampling.temp": MetadataDetails(gguf.GGUFValueType.FLOAT32, 1.9),
        },
        [],
    )
    return target


@pytest.fixture()
def sampled_catalog(project_copy: Path, small_gguf: Path) -> Path:
    weights = gguf_with_sampling(small_gguf, project_copy / "sampled.gguf")
    return add_variant(
        project_copy,
        "open-last-n",
        {"temperature": 0.6},
        {"sampled": {"gguf": str(weights), "license": "Apache-2.0"}},
        open_default="repeat_last_n",
        extends=None,
    )


def test_gguf_sampler_defaults_never_change_a_variant_silently(
    ollama_binary: OllamaBinary, sampled_catalog: Path, tmp_path: Path
) -> None:
    """Register the catalog's qwq-baseline (repeat_penalty 1.1) over a GGUF that sets
    penalty_last_n 7 and temp 1.9: the sampler llama-server runs with is the catalog's. A
    variant that leaves repeat_last_n open is named by validate and doctor on 0.33.3+."""
    catalog = load_catalog(sampled_catalog)
    assert "repeat_last_n" not in catalog.variant("open-last-n").parameters.as_dict()
    env = {"OLLAMA_DEBUG": "2", "OLLAMA_KEEP_ALIVE": "0"}
    with OllamaDaemon(ollama_binary.path, tmp_path / "models", env=env) as own:
        api = OllamaAPI(own.host)
        version = api.version()
        Registrar(api, catalog).create(["qwq-baseline", "open-last-n"], weights_name="sampled")
        run_chat(
            api,
            "qwq-baseline",
            [{"role": "user", "content": "Hi"}],
            options={"num_predict": 4, "seed": 1},
        )
        log = own.log_path.read_text(errors="replace")
        sound = check_registration(
            api, catalog, catalog.variant("qwq-baseline"), "sampled", version
        )
        leaky = check_registration(api, catalog, catalog.variant("open-last-n"), "sampled", version)
        doctor = {
            f.subject: f for f in diagnose(api, catalog, "sampled") if f.check == "gguf sampling"
        }
    assert sound.status == "pass", sound.message
    assert doctor["qwq-baseline"].status == "pass"
    if at_least(version, GGUF_SAMPLING_SINCE):
        # llama-server's own sampler lines (OLLAMA_DEBUG=2): the catalog's values, not the GGUF's
        assert "repeat_last_n = 64, repeat_penalty = 1.100" in log, log[-3000:]
        assert "repeat_last_n = 7," not in log and "temp = 0.600" in log and "temp = 1.9" not in log
        assert leaky.status == "fail"
        assert "general.sampling.penalty_last_n = 7, which becomes repeat_last_n" in leaky.message
        assert doctor["open-last-n"].status == "fail"
        assert "parameters.repeat_last_n" in doctor["open-last-n"].message
    else:
        assert leaky.status == "pass", leaky.message
        assert doctor["open-last-n"].status == "pass"


def test_the_catalog_states_every_sampler_a_gguf_could_fill() -> None:
    from qwq_ollama.catalog.gguf_sampling import SAMPLER_OPTIONS

    catalog = load_catalog(ROOT / "modelfiles" / "models.yaml")
    for variant in catalog.variants.values():
        unset = [
            o for o in SAMPLER_OPTIONS if o not in variant.parameters.as_dict() and o != "typical_p"
        ]
        assert unset == [], f"{variant.name} leaves {unset} to the GGUF"


def test_a_refused_parameter_is_bad_input_before_anything_is_sent(project_copy: Path) -> None:
    catalog_file = add_variant(project_copy, "tp", {"typical_p": 0.5})
    catalog = load_catalog(catalog_file)

    class Refusing:  # answers only what create asks before it would upload anything
        host = "http://127.0.0.1:1"

        def supported_version(self) -> str:
            return "0.34.4"

    with pytest.raises(InputError) as caught:
        Registrar(Refusing(), catalog).create(["tp"], weights_name=SMALL)  # type: ignore[arg-type]
    assert caught.value.field == "variants.tp.parameters.typical_p"
    assert caught.value.line == catalog.line_of("variants", "tp", "parameters", "typical_p")


def test_inspect_shows_the_sampler_defaults_a_gguf_carries(tmp_path: Path) -> None:
    original = write_qwen2(tmp_path / "tiny.gguf")  # a few tokens: parsed in no time
    weights = gguf_with_sampling(original, tmp_path / "sampled.gguf")
    shown = run_cli("inspect", str(weights))
    assert shown.returncode == 0, shown.stderr
    assert "sampling defaults:             penalty_last_n=7, temp=1.9" in shown.stdout
    plain = run_cli("inspect", str(original))
    assert "sampling defaults:             none" in plain.stdout
