"""Property-based input tests (hypothesis): whatever a user types, grokscope answers with a
result or a one-line error, never a traceback. Also NaN and inf weights handed to every probe."""

import string

import numpy as np
import pytest
import torch
from helpers import cli, tiny_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grokscope.analysis import analyze
from grokscope.analysis.selection import make_probes, select_steps
from grokscope.config import load_preset, valid_keys, with_overrides
from grokscope.errors import GrokscopeError
from grokscope.experiments.sweep import parse_grid, parse_seeds
from grokscope.files import save_tensors
from grokscope.probes.base import available_probes
from grokscope.training import train
from grokscope.training.state import check_config

TEXT = st.text(alphabet=string.printable, max_size=30)
NUMBERS = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["none", "true", "", "1e309", "-0", "1_000", "(1,2)", "nan"]))
KEYS = st.one_of(st.sampled_from(valid_keys()), TEXT)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line(error: GrokscopeError) -> None:
    assert "\n" not in str(error) and str(error)


@SETTINGS
@given(pairs=st.lists(st.tuples(KEYS, st.one_of(NUMBERS, TEXT)), max_size=4))
def test_config_overrides_are_accepted_or_refused_in_one_line(pairs, tally):
    tally["inputs tried: config overrides"] += 1
    try:
        config = with_overrides(load_preset("quickstart"), [f"{k}={v}" for k, v in pairs])
        check_config(config)
    except GrokscopeError as e:
        one_line(e)


@SETTINGS
@given(spec=st.one_of(TEXT, st.tuples(st.sampled_from(valid_keys()), NUMBERS, NUMBERS, st.integers(-3, 40),
                                  st.sampled_from(["log", "lin", "", "x"])).map(
    lambda t: f"{t[0]}={t[1]}:{t[2]}:{t[3]}" + (f":{t[4]}" if t[4] else ""))), seeds=st.one_of(st.none(), TEXT))
def test_grid_specs_and_seeds_parse_or_are_refused_in_one_line(spec, seeds, tally):
    tally["inputs tried: grid specs and seeds"] += 1
    for parse in (lambda: parse_grid(spec), lambda: parse_seeds(seeds, 0)):
        try:
            parse()
        except GrokscopeError as e:
            one_line(e)


@SETTINGS
@given(available=st.lists(st.integers(0, 10**6), min_size=1, max_size=50, unique=True).map(sorted),
       every=st.one_of(st.none(), st.integers(-5, 10**5)),
       steps=st.one_of(st.none(), TEXT, NUMBERS.map(lambda v: f"{v}:")),
       count=st.one_of(st.none(), st.integers(-5, 100)))
def test_step_selections_select_or_are_refused_in_one_line(available, every, steps, count, tally):
    tally["inputs tried: step selections"] += 1
    try:
        chosen = select_steps(available, every, steps, count)
        assert chosen and set(chosen) <= set(available)
    except GrokscopeError as e:
        one_line(e)


PROBES = [name for name, _, origin in available_probes() if origin == "built-in"]


@SETTINGS
@given(probe=st.sampled_from(PROBES),
       params=st.dictionaries(TEXT, st.one_of(NUMBERS, TEXT, st.booleans()), max_size=3))
def test_probe_parameters_are_accepted_or_refused_in_one_line(probe, params, tally):
    tally["inputs tried: probe parameters"] += 1
    try:
        make_probes([probe], {probe: params})
    except GrokscopeError as e:
        one_line(e)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.sampled_from(["info", "analyze", "report", "compare", "probes", "presets", "import",
                                 "critical-fraction", "--every", "--steps", "--count", "--probe", "--param",
                                 "--preset", "--set", "--jobs", "-1", "0", "nanda", "quickstart", "x=y",
                                 "/nonexistent", "a:b", "fourier.tol=1"]), max_size=5))
def test_the_command_line_answers_any_argv_in_one_line(argv, tally):
    if argv[:1] == ["critical-fraction"] and any(a.lstrip("-").isdigit() and int(a) > 20 for a in argv):
        return
    tally["inputs tried: command lines"] += 1
    r = cli(*argv)  # an exception here would be a traceback
    assert r.returncode in (0, 1, 2)
    if r.returncode and argv:  # (no arguments at all prints the help, exit 2)
        assert len([x for x in r.stderr.splitlines() if x.startswith("grokscope: error")]) == 1, r.stderr


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_handed_to_every_probe(tmp_path, value, tally):
    """A checkpoint with NaN or inf weights: every built-in probe returns numbers or is recorded
    as failed in the manifest with a one-line reason; the analysis and the report finish."""
    run = train(tiny_config(train={"steps": 20}), tmp_path / "r", progress=False)
    state = {k: v.clone() for k, v in run.model(20).state_dict().items()}
    for k in state:
        state[k].view(-1)[: max(1, state[k].numel() // 3)] = value
    save_tensors(run.checkpoint_path(20), state, {"step": "20"})
    probes = [p for p in PROBES if p != "landscape"]
    params = {"ntk_spectrum": {"n": 16}, "ntk_alignment": {"n": 16}, "cka": {"n": 32},
              "llc": {"chains": 2, "draws": 20, "burnin": 10}}   # what non-finite weights do, not a good estimate
    tables = analyze(run, probes, out=tmp_path / "a", steps="10:20", params=params, progress=False)
    import json

    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())["probes"]
    for name in probes:
        entry = manifest[name]
        assert entry["status"] in ("ok", "failed", "skipped"), (name, entry)
        assert "\n" not in entry.get("reason", ""), (name, entry["reason"])
        tally["probes handed non-finite weights"] += 1
    assert (tmp_path / "a" / "report.html").exists()
    assert np.isfinite(tables["metrics"]["train_loss"][0])  # the finite checkpoint is unaffected
    assert torch.isnan(torch.tensor(tables["weights"]["weight_norm"][-1])) or value == float("inf")


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PAYLOAD_RAN",))


def test_a_pickle_with_a_payload_is_refused_in_one_line_without_running_it(tmp_path, tally):
    from helpers import run_cli

    path = tmp_path / "evil.pth"
    # the legacy format with pickle protocol 4 makes PyTorch print a multi-line UserWarning
    torch.save({"model": _Payload(), "config": {"p": 113}}, path, pickle_protocol=4,
               _use_new_zipfile_serialization=False)
    r = run_cli("import", "nanda", path, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr   # no PyTorch warning before it
    assert "could not be loaded as a weights-only torch file" in r.stderr
    assert not (tmp_path / "PAYLOAD_RAN").exists() and not (tmp_path / "out").exists()
    tally["pickles with a payload refused"] += 1
