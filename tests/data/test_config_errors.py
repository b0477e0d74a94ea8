"""Every DataError of the `dataset:` mapping's kinds, styles, labels and held_out, with its message."""

import pytest

from lossgraph.data import open_dataset
from lossgraph.language.errors import DataError
from lossgraph.language.kinds import Kind

IMAGE = Kind("image", 3)
SHAPES = {"builtin": "shapes", "pairing": "unpaired"}
PIXELDA = {"x_s": IMAGE, "c_s": Kind("label", 3), "x_t": IMAGE}
STARGAN = {"x": IMAGE, "c_s": Kind("label", 4)}
FOUR = {"builtin": "shapes", "styles": {"x": 4}, "labels": {"c_s": "style(x)"}}


def pixelda(**options):
    return {**SHAPES, "labels": {"c_s": "shape(x_s)"}, **options}


def stargan(**options):
    return {**FOUR, **options}


MISTAKES = [
    # source and layout
    ({"folder": "data", "pairing": "paired", "layout": "alinged"}, ["x", "y"],
     ["dataset.layout", "'alinged'", "did you mean 'aligned'?", "'unaligned'", "'classes'"]),
    ({**SHAPES, "layout": "aligned"}, ["x", "y"], ["dataset.layout", "applies only to folder datasets"]),
    ({"folder": "data", "pairing": "paired", "styles": {}}, ["x", "y"], ["dataset.styles", "only to builtin"]),
    ({**SHAPES, "lables": {}}, PIXELDA, ["unknown key 'lables'", "did you mean 'labels'?"]),
    ({"builtin": "shapes", "labels": {"c_s": "shape(x_s)"}}, PIXELDA,
     ["missing key 'pairing'", "'paired'", "'unpaired'", "2 image variables"]),
    # variables and kinds
    (SHAPES, "x y", ["expected the data variables", "got str"]),
    (SHAPES, {}, ["no data variables"]),
    (SHAPES, {"x": IMAGE, "c": "label"}, ["data variable 'c'", "label(K)"]),
    (SHAPES, {"x": IMAGE, "c": 3}, ["data variable 'c' has kind 3", "'image', 'label', 'vector'"]),
    (SHAPES, {"x": IMAGE, "y": IMAGE, "v": Kind("vector", 8)},
     ["'v' is vector(8)", "no dataset provides vectors", "random variable"]),
    (SHAPES, {"x": Kind("image", 4), "y": IMAGE}, ["image variable 'x' has 4 channels", "image(1)"]),
    (SHAPES, {"x": Kind("imag", 3), "y": IMAGE}, ["kind 'imag'", "did you mean 'image'?"]),
    (SHAPES, {"": IMAGE}, ["non-empty name"]),
    ({"builtin": "shapes", "styles": {"x": 2}}, ["x", "x"], ["distinct names", "['x', 'x']"]),
    # styles
    ({**SHAPES, "styles": ["flat"]}, ["x", "y"], ["dataset.styles: expected a mapping", "got list"]),
    ({**SHAPES, "styles": {"x": "flat", "z": "rose"}}, ["x", "y"],
     ["dataset.styles", "'z' is not an image variable", "'x', 'y'"]),
    ({**SHAPES, "styles": {"x": "flat"}}, ["x", "y"], ["no styles for image variable 'y'", "'meadow'"]),
    ({**SHAPES, "styles": {"x": "flat", "y": "slat"}}, ["x", "y"],
     ["dataset.styles.y", "unknown style 'slat'", "did you mean 'slate'?", "'rose'"]),
    ({**SHAPES, "styles": {"x": "flat", "y": []}}, ["x", "y"], ["dataset.styles.y", "non-empty list", "'flat'"]),
    ({**SHAPES, "styles": {"x": "flat", "y": ["rose", "rose"]}}, ["x", "y"],
     ["dataset.styles.y", "style 'rose' listed twice"]),
    ({**SHAPES, "styles": {"x": "flat", "y": 9}}, ["x", "y"], ["dataset.styles.y", "9 styles", "there are 1 to 5"]),
    ({**SHAPES, "styles": {"x": "flat", "y": True}}, ["x", "y"], ["dataset.styles.y", "got True"]),
    ({"builtin": "shapes", "labels": {"c_s": "style(x)"}}, STARGAN,
     ["without 'styles'", "exactly 2 distinct image variables", "['x']", "styles: {x: [flat, outlined, slate]}"]),
    # labels
    (pixelda(labels=["shape(x_s)"]), PIXELDA, ["dataset.labels: expected a mapping", "{c_s: shape(x_s)}"]),
    (pixelda(labels={"cs": "shape(x_s)"}), PIXELDA,
     ["dataset.labels", "'cs' is not a label variable", "did you mean 'c_s'?", "'c_s')"]),
    (pixelda(labels={"c_s": "shape(x_s)", "x_t": "shape(x_t)"}), PIXELDA,
     ["dataset.labels.x_t", "'x_t' is image, not a label", "'c_s'"]),
    ({**SHAPES, "labels": {"c": "shape(x)"}}, ["x", "y"], ["'c' is not a label variable", "declares no label variables"]),
    (SHAPES, PIXELDA,
     ["label variable 'c_s' (label(3)) has no source", "labels: {c_s: shape(x_s)}", "shape(IMAGE)", "style(IMAGE)"]),
    (pixelda(labels={"c_s": "shape x_s"}), PIXELDA,
     ["dataset.labels.c_s", "cannot read 'shape x_s'", "FUNCTION(IMAGE)", "shape(IMAGE)"]),
    (pixelda(labels={"c_s": 3}), PIXELDA, ["dataset.labels.c_s", "cannot read 3"]),
    (pixelda(labels={"c_s": "shap(x_s)"}), PIXELDA,
     ["dataset.labels.c_s", "unknown function 'shap'", "did you mean 'shape'?"]),
    (pixelda(labels={"c_s": "target_style(x_s)"}), PIXELDA,
     ["dataset.labels.c_s", "target_style(...) is allowed only under held_out:"]),
    (pixelda(labels={"c_s": "shape(x_s, c_s)"}), PIXELDA, ["dataset.labels.c_s", "shape takes shape(IMAGE)"]),
    (pixelda(labels={"c_s": "shape(xs)"}), PIXELDA,
     ["dataset.labels.c_s", "'xs' is not an image variable", "did you mean 'x_s'?"]),
    (pixelda(labels={"c_s": "shape(c_s)"}), PIXELDA, ["dataset.labels.c_s", "'c_s' is label(3), not an image"]),
    (pixelda(), {**PIXELDA, "c_s": Kind("label", 4)},
     ["dataset.labels.c_s: shape(x_s) gives 3 classes, but the spec declares c_s as label(4)"]),
    (stargan(styles={"x": 3}), STARGAN, ["style(x) gives 3 classes", "c_s as label(4)"]),
    # held_out
    (pixelda(held_out="c_t"), PIXELDA, ["dataset.held_out: expected a mapping", "{c_t: shape(x_t)}"]),
    (pixelda(held_out={"x_t": "shape(x_t)"}), PIXELDA,
     ["dataset.held_out.x_t", "already a data variable", "labels:"]),
    (pixelda(held_out={"c-t": "shape(x_t)"}), PIXELDA, ["dataset.held_out", "'c-t' is not a valid variable name"]),
    (pixelda(held_out={"c_t": "shape(y)"}), PIXELDA,
     ["dataset.held_out.c_t", "'y' is not an image variable", "'x_s', 'x_t'"]),
    (stargan(held_out={"y_t": "restyle(x)"}), STARGAN, ["dataset.held_out.y_t", "restyle takes restyle(IMAGE, LABEL)"]),
    (stargan(held_out={"y_t": "restyle(x, c_u)"}), STARGAN,
     ["dataset.held_out.y_t", "reads label 'c_u'", "neither labels: nor held_out:", "did you mean 'c_s'?"]),
    (stargan(held_out={"y_t": "restyle(x, 2)"}), STARGAN, ["dataset.held_out.y_t", "'2' is not a variable name"]),
    (stargan(held_out={"k": "shape(x)", "y_t": "restyle(x, k)"}), STARGAN,
     ["dataset.held_out.y_t", "needs 'k' to be a style label of 'x'", "'k' is shape(x)"]),
    (stargan(held_out={"y_t": "restyle(x, c_s)", "z_t": "restyle(x, y_t)"}), STARGAN,
     ["dataset.held_out.z_t", "reads 'y_t', which is not a label"]),
    (pixelda(held_out={"c_t": "target_style(x_t)"}), PIXELDA,
     ["dataset.held_out.c_t", "target_style(x_t) needs an image with at least 2 styles", "'outlined'"]),
    (pixelda(held_out={"c_t": "style(x_t)", "y": "restyle(x_s, c_t)"}), PIXELDA,
     ["dataset.held_out.y", "style label of 'x_s'", "'c_t' is style(x_t)"]),
]


@pytest.mark.parametrize("config, variables, expected", MISTAKES)
def test_config_mistakes_name_the_key_and_the_valid_choices(config, variables, expected):
    with pytest.raises(DataError) as raised:
        open_dataset(config, variables, 32)
    message = str(raised.value)
    for part in expected:
        assert part in message, (part, message)
    assert message.count("\n") == 0 and len(message) < 400, message


def test_folders_without_classes_have_no_labels(tmp_path):
    for folder in ("trainA", "trainB"):
        (tmp_path / folder).mkdir()
    config = {"folder": str(tmp_path), "pairing": "unpaired"}
    with pytest.raises(DataError) as raised:
        open_dataset(config, PIXELDA, 8)
    message = str(raised.value)
    assert "label variable 'c_s' (label(3)) has no source" in message
    assert "images only" in message and "layout: classes" in message
    with pytest.raises(DataError) as raised:
        open_dataset({**config, "held_out": {"c": "class(x_s)"}}, {"x_s": IMAGE, "x_t": IMAGE}, 8)
    assert "dataset.held_out.c: this dataset gives images only" in str(raised.value)


def test_one_image_needs_no_pairing():
    dataset = open_dataset(FOUR, STARGAN, 32)
    assert dataset.pairing == "unpaired"
    assert open_dataset({**FOUR, "pairing": "paired"}, STARGAN, 32).batch(0, 2)["x"].shape == (2, 3, 32, 32)
