"""Figure specs and report specs (grokscope.specs): data that round-trips through JSON."""

import json

from grokscope.specs import FigureSpec, Headline, Mark, Panel, ReportSpec, Series, read_spec, write_spec


def test_a_report_spec_round_trips_through_its_file(tmp_path):
    spec = ReportSpec("landscape", "a description", "notes", figures=(FigureSpec("landscape", panels=(
        Panel(x="weight_norm", columns=("train_loss", "test_loss"), logx=True, logy=True,
              marks=(Mark(3.0, "threshold"), Mark(0.5, axis="y", style="--")),
              references=(Series("landscape", (1.0, 2.0), (0.1, 0.2), split="test", style="s", colour=2, size=4.0),)),
        Panel(kind="heatmap", prefix="embed_k", exclude=("embed_k0",)))),),
        headlines=(Headline("gini_embed", "Gini"),), quiet=("norm.",))
    write_spec(tmp_path, spec)
    assert read_spec(tmp_path, "landscape") == spec


def test_missing_or_empty_specs_get_the_default_figure(tmp_path):
    default = read_spec(tmp_path, "mine")
    assert default.figures == (FigureSpec("mine", (Panel(title="mine"),)),)
    write_spec(tmp_path, ReportSpec("empty", headlines=(Headline("x", "X", kind="last"),)))
    empty = read_spec(tmp_path, "empty")
    assert empty.figures == (FigureSpec("empty", (Panel(title="empty"),)),) and empty.headlines


def test_fields_of_a_newer_version_are_ignored(tmp_path):
    import json

    data = ReportSpec("p", figures=(FigureSpec("p"),)).to_dict()
    data["future_field"] = 1
    data["figures"][0]["panels"][0]["future_panel_field"] = "x"
    (tmp_path / "p.spec.json").write_text(json.dumps(data))
    assert read_spec(tmp_path, "p") == ReportSpec("p", figures=(FigureSpec("p"),))


def test_a_reference_written_before_series_had_a_style_is_drawn_as_one():
    """Old spec files name a `marker`; they still draw their references' look (style "")."""
    data = FigureSpec("p", (Panel(references=(Series("old", (1.0,), (2.0,)),)),)).to_dict()
    ref = data["panels"][0]["references"][0]
    del ref["style"], ref["split"], ref["colour"], ref["size"]
    ref["marker"] = "o"
    assert FigureSpec.from_dict(data).panels[0].references[0] == Series("old", (1.0,), (2.0,), style="")


def test_a_reproductions_figure_round_trips_with_its_rows_and_caption():
    spec = FigureSpec("figure", (Panel(title="(a)", references=(Series("train", (0.0, 1.0), (1.0, 0.5), split="train"),),
                                       yticks=((0.0, "1e-3"),), title_loc="left"),) * 3, columns=2, caption="lr 1e-3")
    assert FigureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
