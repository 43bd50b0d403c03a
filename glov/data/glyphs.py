"""The ``glyphs`` lab source: digits and Latin letters (62 classes) rendered from Debian's free fonts.

It is the lab's many-class task (docs/LAB.md). Three choices keep it a fair measuring instrument:

- **One face per design and style.** Several packages ship the same design (URW's Nimbus Sans,
  TeX Gyre Heros and FreeSans are all Helvetica; Liberation 2 is Croscore's Arimo; CMU and Latin
  Modern are both Computer Modern, Latin Modern in several optical sizes). Rendered at 32 px they are
  near-duplicates, which would make a test set look larger than it is and its intervals too
  narrow; :data:`DESIGNS` groups them and :func:`select_faces` keeps one face per (design, weight,
  slant, width).
- **The split is by design**, not by image (``LabImage.group``): the bold and the italic of one
  design, and its clones, never straddle the training / held-out line, so test glyphs come from
  typefaces the lab VLM has never seen.
- **Text faces only**: symbol, math and keyboard fonts put other pictures at the Latin code points,
  and small-caps faces draw small letters as capitals; both are left out (:data:`NOT_TEXT`), as is
  any face missing one of the 62 characters.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

GLYPHS = string.digits + string.ascii_uppercase + string.ascii_lowercase
IMAGE_SIZE = 32  # the lab VLM's input size
EM_PIXELS = 22  # font size; with the baseline at BASELINE every face's letters keep their relative heights
BASELINE = 24
INK, PAPER = 48, 255  # dark grey on white

FONT_PACKAGES = (
    "fonts-urw-base35",
    "fonts-texgyre",
    "fonts-noto-core",
    "fonts-dejavu-core",
    "fonts-dejavu-extra",
    "fonts-liberation2",
    "fonts-freefont-ttf",
    "fonts-crosextra-carlito",
    "fonts-crosextra-caladea",
    "fonts-linuxlibertine",
    "fonts-croscore",
    "fonts-cmu",
    "fonts-lmodern",
)
NOT_TEXT = ("symbol", "math", "keyboard", "nushu", "d050000l", "caps")  # substrings of a family name
DESIGNS = {  # family-name prefix -> design (longest prefix wins); a family not listed is its own design
    "Nimbus Sans": "helvetica", "TeX Gyre Heros": "helvetica", "FreeSans": "helvetica",
    "Nimbus Sans Narrow": "helvetica narrow", "TeX Gyre Heros Cn": "helvetica narrow",
    "Nimbus Roman": "times", "TeX Gyre Termes": "times", "FreeSerif": "times",
    "Nimbus Mono PS": "courier", "TeX Gyre Cursor": "courier", "FreeMono": "courier",
    "P052": "palatino", "TeX Gyre Pagella": "palatino",
    "C059": "century schoolbook", "TeX Gyre Schola": "century schoolbook",
    "URW Bookman": "bookman", "TeX Gyre Bonum": "bookman",
    "URW Gothic": "avant garde", "TeX Gyre Adventor": "avant garde",
    "Z003": "zapf chancery", "TeX Gyre Chorus": "zapf chancery",
    "Arimo": "arimo", "Liberation Sans": "arimo",
    "Tinos": "tinos", "Liberation Serif": "tinos",
    "Cousine": "cousine", "Liberation Mono": "cousine",
    "CMU Serif": "computer modern roman", "CMU Classical Serif": "computer modern roman",
    "Latin Modern Roman": "computer modern roman",
    "CMU Sans Serif": "computer modern sans", "Latin Modern Sans": "computer modern sans",
    "CMU Typewriter Text": "computer modern typewriter", "Latin Modern Mono": "computer modern typewriter",
    "Noto Sans": "noto sans", "Noto Serif": "noto serif",
    "Linux Libertine O": "linux libertine", "Linux Libertine Display O": "linux libertine",
}


def glyph_class(char: str) -> str:
    """``7`` -> ``digit 7``, ``G`` -> ``capital letter G``, ``g`` -> ``small letter g``: names that
    differ in more than case, so class folders stay distinct on case-insensitive file systems."""
    if char.isdigit():
        return f"digit {char}"
    return f"{'capital' if char.isupper() else 'small'} letter {char}"


GLYPH_CLASSES = [glyph_class(c) for c in GLYPHS]


@dataclass(frozen=True)
class Face:
    path: Path
    family: str
    style: str
    weight: int  # light 300, regular 400 or bold 700 (OS/2 weight class, bucketed)
    italic: bool
    width: int  # condensed 3 or normal 5 (OS/2 width class)

    @property
    def design(self) -> str:
        prefix = max((p for p in DESIGNS if self.family == p or self.family.startswith(p + " ")), key=len, default="")
        return DESIGNS[prefix] if prefix else self.family.lower()


def read_face(path: Path) -> Face | None:
    """The face in a font file, or None when it is not a text face with all 62 characters."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        font = TTFont(path, lazy=True, fontNumber=0)
        names = font["name"]
        family = str(names.getDebugName(16) or names.getDebugName(1) or "")
        style = str(names.getDebugName(17) or names.getDebugName(2) or "")
        cmap = font.getBestCmap() or {}
        os2 = font["OS/2"] if "OS/2" in font else None
    except (TTLibError, KeyError, OSError, AssertionError):
        return None
    if not family or any(word in family.lower() for word in NOT_TEXT) or not all(ord(c) in cmap for c in GLYPHS):
        return None
    italic = bool(os2 and os2.fsSelection & 1) or any(w in style.lower() for w in ("italic", "oblique", "slanted"))
    weight = os2.usWeightClass if os2 else 400
    bucket = 300 if weight < 350 else 400 if weight < 550 else 700  # vendors disagree on the classes between
    return Face(path, family, style, bucket, italic, 5 if not os2 or os2.usWidthClass >= 5 else 3)


def select_faces(faces: Iterable[Face]) -> list[Face]:
    """One face per (design, weight, slant, width): the first by family and file name."""
    chosen: dict[tuple, Face] = {}
    for face in sorted(faces, key=lambda f: (f.family, f.path.name)):
        chosen.setdefault((face.design, face.weight, face.italic, face.width), face)
    return sorted(chosen.values(), key=lambda f: (f.design, f.family, f.path.name))


def font_files(folders: Iterable[Path]) -> list[Path]:
    """Every TrueType/OpenType file under the folders, each once (a system-wide folder can hold two packages)."""
    seen, out = set(), []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            real = path.resolve()
            if path.suffix.lower() in (".ttf", ".otf") and real not in seen:
                seen.add(real)
                out.append(path)
    return out


def render(face: Face, chars: str = GLYPHS) -> list[np.ndarray]:
    """Each character, centred horizontally with its baseline at :data:`BASELINE`, shrunk only if it
    is wider than the image (a few wide capitals of wide faces)."""
    font = ImageFont.truetype(str(face.path), EM_PIXELS)
    return [_draw(face, font, char) for char in chars]


def _draw(face: Face, font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    left, _, right, _ = font.getbbox(char, anchor="ms")
    if right - left > IMAGE_SIZE - 2:
        font = ImageFont.truetype(str(face.path), max(8, int(EM_PIXELS * (IMAGE_SIZE - 2) / (right - left))))
    image = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), PAPER)
    ImageDraw.Draw(image).text((IMAGE_SIZE / 2, BASELINE), char, fill=INK, font=font, anchor="ms")
    return np.asarray(image)


def design_key(face: Face) -> str:
    """What the held-out split hashes: the design, so all its faces fall on one side."""
    return hashlib.sha1(f"glyphs-design:{face.design}".encode()).hexdigest()


def face_words(face: Face) -> str:
    """The typeface as a caption names it: ``DejaVu Serif Bold Italic`` (``Regular`` dropped)."""
    style = "" if face.style.lower() in ("regular", "roman", "book", "normal") else face.style
    return f"{face.family} {style}".strip()
