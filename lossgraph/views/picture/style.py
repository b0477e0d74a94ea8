"""How the loss-graph picture looks: colours, type sizes and spacing, in scene pixels.

Every renderer (SVG, PNG, Graphviz) and the layout read these, so a colour or a gap is changed
in one place. Text is monospace, so its width follows from its length alone (`text_width`):
the layout needs no font metrics and no system dependency.
"""

from __future__ import annotations

PLAYER_COLOURS = ("#1f6fb4", "#d0342c", "#2a9d3a", "#8e44ad", "#e07b00", "#8c564b", "#d6338f", "#17a2b8")
PLAIN_COLOUR = "#9a9a9a"
TEXT_COLOUR = "#1e1e1e"
MUTED_COLOUR = "#5f5f5f"
FONT_FAMILY = "DejaVu Sans Mono, Menlo, Consolas, monospace"
CHAR_WIDTH = 0.602  # advance of a DejaVu Sans Mono character, in ems

LABEL_SIZE = 13
DETAIL_SIZE = 11
NOTE_SIZE = 10
TITLE_SIZE = 16
LINE_GAP = 4           # between text lines in a box
PAD_X = 10             # inside a box, left and right of the text
PAD_Y = 7              # inside a box, above and below the text
PORT_GAP = 7           # between two edge ends on one side of a box
NODE_GAP = 16          # between two boxes in a column
DUMMY_GAP = 10         # between a box and an edge passing through its column
COLUMN_GAP = 86        # between two columns, where the edges curve
MARGIN = 24
ARROW = 8              # length of an arrowhead
MAX_TEXT = 52          # characters of a formula shown in a box (the tooltip has all of it)
DASH = (6, 4)
PNG_SCALE = 2          # PNG pixels per scene pixel
LEGEND_ROW = 18        # height of one legend line

SIZES = {"label": LABEL_SIZE, "detail": DETAIL_SIZE, "note": NOTE_SIZE}  # a box's text line by its style
EDGE_WIDTHS = {"plain": 1.3, "detached": 1.7, "gradient": 2.2}


def text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR_WIDTH


def lines_height(lines: list[tuple[str, str]]) -> float:
    """Height of a box's text lines, gaps included."""
    return sum(SIZES[style] for _, style in lines) + LINE_GAP * (len(lines) - 1)


def short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tint(colour: str, amount: float) -> str:
    """`colour` mixed with white: 0 is white, 1 is the colour."""
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(255 - (255 - c) * amount) for c in (red, green, blue)]
    return "#{:02x}{:02x}{:02x}".format(*mix)
