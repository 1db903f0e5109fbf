"""Figure specs and report specs (grokscope.specs): data that round-trips through JSON."""

from grokscope.specs import FigureSpec, Headline, Mark, Panel, ReportSpec, Series, read_spec, write_spec


def test_a_report_spec_round_trips_through_its_file(tmp_path):
    spec = ReportSpec("lu", "a description", "notes", figures=(FigureSpec("lu", panels=(
        Panel(x="weight_norm", columns=("train_loss", "test_loss"), logx=True, logy=True,
              marks=(Mark(3.0, "threshold"), Mark(0.5, axis="y", style="--")),
              references=(Series("landscape", (1.0, 2.0), (0.1, 0.2), "s"),)),
        Panel(kind="heatmap", prefix="embed_k", exclude=("embed_k0",)))),),
        headlines=(Headline("gini_embed", "Gini"),), quiet=("norm.",))
    write_spec(tmp_path, spec)
    assert read_spec(tmp_path, "lu") == spec


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
