"""`lossgraph plot`: a run's loss curves and held-out metrics as a PNG (lossgraph/plot.py)."""

import math
import subprocess
import sys

import pytest
from PIL import Image

from lossgraph.cli import main
from lossgraph.views.picture import PLAYER_COLOURS
from lossgraph.views.plot import DPI, PANEL_SIZE, panels, read_log, run_figure

PANEL = (round(PANEL_SIZE[0] * DPI), round(PANEL_SIZE[1] * DPI))


def _run_folder(tmp_path, evaluate=True, players=("D", "G")):
    run = tmp_path / "run"
    run.mkdir()
    header = ["step"]
    for player in players:
        header += [player, f"{player}/adv"] + ([f"{player}/cycle"] if player == "G" else [])
    lines = [",".join(header + ["seconds"])]
    for step in range(10, 310, 10):
        values = [str(step)] + [repr(3.0 / (1 + step / 100) + index) for index in range(len(header) - 1)]
        lines.append(",".join(values + [repr(step * 0.05)]))
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    if evaluate:
        (run / "eval.csv").write_text("step,error_XY,identity_XY\n100,0.5,1.5\n200,0.3,1.5\n300,0.2,1.5\n")
    return run


def _colour_count(image, hex_colour):
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    counts = {colour: count for count, colour in image.convert("RGB").getcolors(maxcolors=1 << 22)}
    return counts.get(rgb, 0)


def test_plot_draws_a_panel_per_player_and_one_for_held_out_metrics(tmp_path, capsys):
    run = _run_folder(tmp_path)
    assert main(["plot", str(run)]) == 0
    assert "losses.png" in capsys.readouterr().out
    with Image.open(run / "losses.png") as image:
        assert image.format == "PNG"
        assert image.size == (3 * PANEL[0], PANEL[1])  # D, G, held-out metrics
        # each player's loss is drawn in its colour from `lossgraph graph`
        assert _colour_count(image, PLAYER_COLOURS[0]) > 200
        assert _colour_count(image, PLAYER_COLOURS[1]) > 200


def test_without_eval_csv_there_is_no_metrics_panel(tmp_path):
    run = _run_folder(tmp_path, evaluate=False)
    output = tmp_path / "elsewhere" / "curves.png"
    assert main(["plot", str(run), "-o", str(output)]) == 0
    with Image.open(output) as image:
        assert image.size == (2 * PANEL[0], PANEL[1])
    assert not (run / "losses.png").exists()


def test_many_panels_wrap_into_rows(tmp_path):
    run = _run_folder(tmp_path, players=("D", "G", "C"))
    assert main(["plot", str(run)]) == 0
    with Image.open(run / "losses.png") as image:
        assert image.size == (3 * PANEL[0], 2 * PANEL[1])  # 4 panels, 3 a row


def test_log_reading_groups_terms_under_players_and_keeps_gaps(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,D,D/adv,G,G/adv,G/cycle,seconds\n1,1.0,1.0,2.0,,2.0,0.1\n2,0.5,0.5,1.5,0.4,1.1,0.2\n3,0.4\n")
    steps, columns = read_log(path)
    assert steps == [1.0, 2.0]  # the torn last line is dropped
    assert "seconds" not in columns and "step" not in columns
    assert columns["G/adv"][0] != columns["G/adv"][0]  # a blank cell is NaN, not 0
    assert panels(columns) == [("D", ["D", "D/adv"]), ("G", ["G", "G/adv", "G/cycle"])]


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    (tmp_path / "notes").mkdir()
    result = subprocess.run([sys.executable, "-m", "lossgraph", "plot", str(tmp_path / "notes")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "is not a run folder" in result.stderr and "metrics.csv" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("empty", "has no rows yet"),
    ("suffix", "'.gif' is not a picture format"),
    ("garbled", "is not a lossgraph log"),
])
def test_plot_errors(tmp_path, capsys, case, message):
    run = tmp_path / "run"
    output = []
    if case != "missing":
        run.mkdir()
        text = {"empty": "step,D,seconds\n", "suffix": "step,D,seconds\n1,1.0,0.1\n", "garbled": "hello\n"}[case]
        (run / "metrics.csv").write_text(text)
    if case == "suffix":
        output = ["-o", str(tmp_path / "curves.gif")]
    assert main(["plot", str(run), *output]) == 2
    assert message in capsys.readouterr().err


def _panel(figure, title):
    return next(axes for axes in figure.axes if axes.get_title().startswith(title))


def test_held_out_errors_get_a_log_axis_where_the_baseline_would_flatten_them(tmp_path):
    run = _run_folder(tmp_path)  # error_XY falls 0.5 -> 0.2 under a do-nothing identity_XY of 1.5
    figure = run_figure(run)
    held_out = _panel(figure, "held-out metrics")
    assert held_out.get_yscale() == "log" and "log scale" in held_out.get_title()
    assert _panel(figure, "player D").get_yscale() == "linear"  # losses may be negative: linear
    low, high = held_out.get_ylim()
    share = math.log(0.5 / 0.2) / math.log(high / low)
    assert share > 0.35, f"the trained curve fills only {share:.0%} of the axis"
    lines = {line.get_label(): line for line in held_out.get_lines()}
    assert lines["identity_XY = 1.5, constant"].get_linestyle() == "--"  # the baseline, a dashed level
    assert lines["error_XY"].get_linestyle() == "-"
    labels = [label.get_text() for label in held_out.get_yticklabels()]
    assert "0.2" in labels and "0.5" in labels  # plain numbers, not 2x10^-1


def test_held_out_metrics_with_a_zero_stay_linear(tmp_path):
    run = _run_folder(tmp_path)
    (run / "eval.csv").write_text("step,accuracy,error\n100,0.0,0.5\n200,0.25,0.3\n300,0.5,0.2\n")
    held_out = _panel(run_figure(run), "held-out metrics")
    assert held_out.get_yscale() == "linear" and held_out.get_title() == "held-out metrics (eval.csv)"
