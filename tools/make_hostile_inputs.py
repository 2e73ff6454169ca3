"""Writes the tiny malicious inputs under Fixtures/hostile/ that the hostile-input tests replay.

Each is a few KB that declares a size costing gigabytes if believed (issue 13, case C4):
  wide.png  1,000,000 x 1 pixels (the default resize would make it 73,000,000 x 73)
  wide.jpg     65,500 x 1 pixels (JPEG's largest width; resized, 4,781,500 x 73)
Models and .npy files with absurd sizes are built by the tests themselves.
"""
import json
import pathlib
import struct
import zlib

import PIL
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Fixtures" / "hostile"


def png(width, height):
    """An 8-bit RGB PNG of one grey colour, written chunk by chunk (PIL would hold all pixels)."""
    row = b"\0" + b"\x80" * (width * 3)
    data = zlib.compress(row * height, 9)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "wide.png").write_bytes(png(1_000_000, 1))
    Image.new("RGB", (65_500, 1), (128, 128, 128)).save(OUT / "wide.jpg", quality=10)
    manifest = {
        "generator": "tools/make_hostile_inputs.py",
        "pillow": PIL.__version__,
        "files": {p.name: p.stat().st_size for p in sorted(OUT.iterdir()) if p.suffix in (".png", ".jpg")},
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(manifest)


if __name__ == "__main__":
    main()
