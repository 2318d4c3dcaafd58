"""The parameters of rendered resources (PS3.18 8.3.5.1 for WADO-RS, 9.1.2 for WADO-URI) and of
frame lists (PS3.18 10.4.1.1.2), parsed; a malformed one is `ValueError` with a PHI-free reason
the caller answers 400 with."""

from __future__ import annotations

import math

from mapping.dicom.rendering import FUNCTIONS, MAX_SIDE, Window

MAX_FRAMES_LISTED = 10_000


def window_param(value: str) -> Window:
    """`window=center,width,function` (function: linear, linear-exact or sigmoid)."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3 or parts[2].lower() not in FUNCTIONS:
        raise ValueError("window is center,width,function with function linear, linear-exact or sigmoid")
    return window_of(parts[0], parts[1], FUNCTIONS[parts[2].lower()])


def window_of(center: str, width: str, function: str = "LINEAR") -> Window:
    try:
        c, w = float(center), float(width)
    except ValueError:
        raise ValueError("the window center and width are numbers") from None
    if not (math.isfinite(c) and math.isfinite(w)) or w <= 0:
        raise ValueError("the window width is a positive number")
    return Window(c, w, function)


def viewport_param(value: str) -> tuple[int | None, int | None]:
    """`viewport=vw,vh` (a source region, sx,sy,sw,sh, is not supported)."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2:
        raise ValueError("viewport is width,height (a source region is not supported)")
    return size_of(parts[0] or None, parts[1] or None)


def size_of(width: str | None, height: str | None) -> tuple[int | None, int | None]:
    out: list[int | None] = []
    for text in (width, height):
        if text is None:
            out.append(None)
            continue
        if not text.isdigit() or not 1 <= int(text) <= MAX_SIDE:
            raise ValueError(f"a viewport side is a whole number from 1 to {MAX_SIDE}")
        out.append(int(text))
    if out == [None, None]:
        raise ValueError("a viewport needs a width or a height")
    return out[0], out[1]


def quality_param(value: str) -> int:
    if not value.strip().isdigit() or not 1 <= int(value) <= 100:
        raise ValueError("quality is a whole number from 1 to 100")
    return int(value)


def frame_list(value: str) -> list[int]:
    """`1,3,5`: frame numbers (1-based), in the order listed."""
    parts = [p.strip() for p in value.split(",")]
    if not parts or len(parts) > MAX_FRAMES_LISTED or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise ValueError("frames are listed as positive whole numbers separated by commas")
    return [int(p) for p in parts]
