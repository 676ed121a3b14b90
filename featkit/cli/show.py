"""``featkit show``: the picture of what an extractor computes on one image, as a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from featkit.cli._common import parse_params
from featkit.cli._options import path_option
from featkit.exceptions import InvalidParameterError


@click.command("show")
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "-e", "--extractor", "extractor_name", required=True, help="hog, lbp, sift, dsift or cnn."
)
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Extractor parameter."
)
@path_option(
    "-o", "--out", default=None, help="Image file to write [default: IMAGE-EXTRACTOR.png here]."
)
@click.option(
    "--class",
    "class_index",
    type=int,
    default=None,
    help="cnn: the class Grad-CAM explains [default: the predicted one].",
)
@click.option(
    "--map",
    "cnn_map",
    type=click.Choice(["auto", "gradcam", "activation"]),
    default="auto",
    show_default=True,
    help="cnn: Grad-CAM of the ImageNet head, or the mean activation of the last feature "
    "map; auto: the activation map for a checkpoint (it saves no head).",
)
@click.option(
    "--zoom", default=1, show_default=True, help="Each pixel becomes a ZOOM x ZOOM square."
)
def show_command(
    image: Path,
    extractor_name: str,
    params: Sequence[str],
    out: Path | None,
    class_index: int | None,
    cnn_map: str,
    zoom: int,
) -> None:
    """Draw what an extractor computes on IMAGE, prepared as the extractor prepares it: HOG's
    cell histograms (as skimage draws them), LBP's code images, SIFT's keypoints, dense
    SIFT's grid, or a CNN's Grad-CAM or activation map. Prints what the picture shows."""
    from PIL import Image

    from featkit.visualize import picture

    if out is None:
        out = Path(f"{image.stem}-{extractor_name.replace('/', '-')}.png")
    drawn = picture(
        image,
        extractor_name,
        class_index=class_index,
        cnn_map=cnn_map,
        zoom=zoom,
        **parse_params(params),
    )
    try:
        Image.fromarray(drawn.image).save(out)
    except (ValueError, OSError) as exc:  # an unknown suffix, a missing folder
        raise InvalidParameterError(f"cannot write {out}: {exc}") from None
    click.echo(f"wrote {out}: {drawn.caption}")
