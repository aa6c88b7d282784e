"""Property test: arbitrary text in any catalog field that lands in a rendered Modelfile cannot
change what the Modelfile says. Either the catalog is refused (an InputError naming that field,
nothing written), or `ollama create -f` of the rendered Modelfile on the private daemon gives,
by /api/show, exactly the FROM, TEMPLATE, PARAMETERs, SYSTEM and LICENSE the catalog meant, and
nothing else (no MESSAGE, ADAPTER, RENDERER or PARSER).

Also: the Go template check of `render` agrees with the daemon about which templates it takes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from qwq_ollama.catalog.gotemplate import parse_problems
from qwq_ollama.catalog.render import render_all, render_variant
from qwq_ollama.catalog.schema import load_catalog
from qwq_ollama.daemon.answers import Shown
from qwq_ollama.daemon.client import OllamaAPI
from qwq_ollama.daemon.registry import blob_of
from qwq_ollama.errors import InputError, RefusedError

from .conftest import ROOT, f32
from .test_modelfile_roundtrip import texts

pytestmark = pytest.mark.live

BUDGET = 120
INJECTIONS = [
    "ok\nFROM /etc/passwd\nPARAMETER temperature 9",
    'x"""\nSYSTEM evil\n"""',
    '"""\n',
    "a\rPARAMETER temperature 9",
    "# c\nLICENSE extra",
    "x\u2028SYSTEM y",
    "\nMESSAGE user hi",
    "ADAPTER ./lora.gguf",
    "\r\nRENDERER qwen3",
    "qwq-x",
    "a:b",
    "host.example:80/ns/m:7b",
]
FIELDS = (
    "variant description",
    "weights description",
    "system",
    "license",
    "stop",
    "variant name",
    "ollama ref",
    "gguf path",
)
hostile = st.one_of(st.sampled_from(INJECTIONS), texts)
# Text a field would accept, so that "kept" is reached for every field, not only "refused".
plausible = {
    "variant name": st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,20}", fullmatch=True),
    "ollama ref": st.from_regex(
        r"([a-z0-9_][a-z0-9_.:-]{0,8}/)?([a-z0-9_][a-z0-9_-]{0,8}/)?"
        r"[a-z0-9_][a-z0-9_.-]{0,8}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,8})?",
        fullmatch=True,
    ),
    "gguf path": st.text(
        st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=30
    ),
}
cases = st.sampled_from(FIELDS).flatmap(
    lambda f: st.tuples(st.just(f), st.one_of(hostile, plausible[f]) if f in plausible else hostile)
)


def _catalog(field: str, text: str, base_ref: str) -> tuple[dict, str]:
    """A catalog over the base model with `text` in `field`, and the variant's name."""
    weights = {"description": "base", "ollama": base_ref, "license": "MIT"}
    variant: dict[str, Any] = {
        "description": "d",
        "system": "be brief",
        "parameters": {"num_ctx": 2048, "temperature": 0.5, "stop": ["<|im_end|>"]},
    }
    name = "inj"
    if field == "variant name":
        name = text
    elif field in ("variant description", "weights description"):
        (variant if field.startswith("variant") else weights)["description"] = text
    elif field in ("system", "license"):
        (variant if field == "system" else weights)[field] = text
    elif field == "stop":
        variant["parameters"]["stop"] = ["<|im_end|>", text]
    else:
        del weights["ollama"]
        weights["ollama" if field == "ollama ref" else "gguf"] = text
    return {
        "templates": str(ROOT / "templates"),
        "weights": {"w": weights},
        "defaults": {"weights": "w", "template": "qwq"},
        "variants": {name: variant},
    }, name


def _expected_field(field: str, name: str) -> str:
    return {
        "variant description": f"variants.{name}.description",
        "weights description": "weights.w.description",
        "system": f"variants.{name}.system",
        "license": "weights.w.license",
        "stop": f"variants.{name}.parameters",
        "variant name": "variants.",
        "ollama ref": "weights.w.ollama",
        "gguf path": "weights.w.gguf",
    }[field]


def test_catalog_text_cannot_change_what_the_modelfile_says(
    ollama_binary,
    daemon,
    api: OllamaAPI,
    small_base: str,
    small_gguf: Path,
    tmp_path_factory,
    capsys,
) -> None:
    """BUDGET cases, then how many were kept and refused per field: both must be reached, in
    this one test, so it holds whatever runs before it or alone."""
    ran: dict[str, list[int]] = {f: [0, 0] for f in FIELDS}  # field -> [kept, refused]

    @settings(
        max_examples=BUDGET,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=cases)
    def one(case: tuple[str, str]) -> None:
        kept = _one_case(case, ollama_binary, daemon, api, small_base, small_gguf, tmp_path_factory)
        ran[case[0]][0 if kept else 1] += 1

    one()
    with capsys.disabled():
        print(
            "\nModelfile injection: "
            + ", ".join(f"{f} {k} kept/{r} refused" for f, (k, r) in ran.items())
        )
    assert sum(k + r for k, r in ran.values()) >= BUDGET
    assert sum(k for k, _ in ran.values()) >= BUDGET // 4  # not only refusals


def _one_case(
    case: tuple[str, str],
    ollama_binary,
    daemon,
    api: OllamaAPI,
    small_base: str,
    small_gguf: Path,
    tmp_path_factory,
) -> bool:
    """One hostile text in one field: refused as it should be (False) or kept exactly (True)."""
    field, text = case
    tmp = tmp_path_factory.mktemp("inj")
    data, name = _catalog(field, text, small_base)
    path = tmp / "modelfiles" / "models.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    # only text YAML carries as is (PyYAML writes U+0085 so that it reads back as a space)
    assume(yaml.safe_load(path.read_text(encoding="utf-8")) == data)
    placed = field != "gguf path" or _place_weights(path.parent, text, small_gguf)
    out = tmp / "out"
    try:
        render_all(load_catalog(path), out_dir=out)
    except InputError as exc:
        assert exc.field and exc.field.startswith(_expected_field(field, name)), str(exc)
        assert not out.exists()
        return False
    catalog = load_catalog(path)
    variant = catalog.variant(name)
    _make_local(api, small_base, catalog.weights["w"].ollama_ref)
    created = subprocess.run(
        [str(ollama_binary.path), "create", name, "-f", str(out / f"{name}.Modelfile")],
        capture_output=True,
        text=True,
        env={**os.environ, "OLLAMA_HOST": daemon.host, "HOME": str(tmp)},
    )
    if not placed:  # FROM names no file, so Ollama reads it as a model name, and none fits
        assert created.returncode != 0 and api.show(name) is None, created.stderr
        return False
    assert created.returncode == 0, created.stderr
    shown = api.show(name)
    try:
        assert shown is not None
        _assert_shows_the_catalog(shown, catalog, variant, api, small_base)
        raw = api.http.post("/api/show", json={"model": name}).json()
        assert not raw.get("messages") and not raw.get("renderer") and not raw.get("parser")
    finally:
        api.delete(name)
    return True


def _place_weights(folder: Path, text: str, small_gguf: Path) -> bool:
    """Put a link to the small model where the catalog will look for the GGUF `text` names,
    if that is inside `folder` and free; whether it was placed."""
    if "\0" in text:
        return False
    target = Path(os.path.expanduser(text))
    target = (folder / target).resolve() if not target.is_absolute() else target
    if not target.is_relative_to(folder) or target == folder:
        return False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(small_gguf)
    except OSError:  # a name too long, a file or folder in the way
        return False
    return True


def _make_local(api: OllamaAPI, base: str, ref: str | None) -> None:
    """An accepted `ollama` reference must name the base model, never a download."""
    if ref is not None and ref != base:
        reply = api.http.post("/api/copy", json={"source": base, "destination": ref})
        assert reply.status_code == 200, f"the daemon refuses the model name {ref!r}"


def _assert_shows_the_catalog(shown: Shown, catalog, variant, api: OllamaAPI, base: str) -> None:
    weights = catalog.weights["w"]
    assert shown.template == render_variant(catalog, variant).ollama_template
    assert shown.system == variant.system
    params = shown.parameters
    meant = variant.parameters.as_dict()
    assert params.keys() == meant.keys()
    assert params["stop"] == meant["stop"] and params["num_ctx"] == meant["num_ctx"]
    assert f32(params["temperature"]) == f32(meant["temperature"])
    assert shown.license == ((weights.license,) if weights.license else ())
    assert shown.blob_digest == blob_of(api, base) is not None
    assert "\nADAPTER " not in shown.modelfile


GO_TEMPLATES = [
    "{{ .Prompt }}",
    "{{ if }}",
    "{{ .Messages",
    "{{ json .Messages }}{{ currentDate }}",
    "{{ yesterdayDate }}{{ toTypeScriptType . }}",
    "{{ tojson . }}",
    '{{ template "x" }}',
    '{{ define "x" }}a{{ end }}{{ template "x" . }}',
    "{{ range .Messages }}{{ break }}{{ end }}",
    "{{ break }}",
    "{{ end }}",
    "{{ $x := 1 }}{{ $y }}",
    '{{ "unterminated }}',
    "{{/* c */}}",
    '{{ .A | printf "%s" }}',
    "{{ else }}",
    "{{ with .System }}{{ . }}{{ else }}-{{ end }}",
]


@pytest.mark.parametrize("template", GO_TEMPLATES)
def test_the_go_template_check_agrees_with_the_daemon(
    api: OllamaAPI, small_base: str, template: str
) -> None:
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain: render skips this check (and says so)")
    [problem] = parse_problems([template])
    try:
        list(api.create("gotmpl-check", from_=small_base, template=template))
    except RefusedError as exc:
        assert problem is not None, f"the daemon refused what we let through: {exc}"
        assert problem[1] in str(exc.detail) or problem[1] in str(exc)
        return
    api.delete("gotmpl-check")
    assert problem is None, f"we refuse what the daemon takes: {problem}"
