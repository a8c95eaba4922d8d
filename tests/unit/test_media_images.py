"""Photos: auto-rotation, metadata stripped, GPS kept aside, bombs and non-images refused."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import time
import warnings
import zlib

import pytest
from PIL import Image, ImageCms

from bot.flows.refusals import sentence
from bot.flows.texts import TEXTS
from core.errors import InvalidInput, MediaRejected
from core.media import process_image
from core.media.images import MSG_TOO_MANY_PIXELS

RED, BLUE = (255, 0, 0), (0, 0, 255)


def encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    im.save(out, format=fmt, **kw)
    return out.getvalue()


def reopen(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def close_to(pixel: object, colour: tuple[int, ...], tol: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour, strict=False))


def gps_exif(lat_ref: str, lat: tuple[float, ...], lon_ref: str,
             lon: tuple[float, ...]) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: lat_ref, 2: lat, 3: lon_ref, 4: lon}
    return exif


def png_claiming(width: int, height: int) -> bytes:
    """A tiny RGBA PNG whose header claims width x height (4 bytes a pixel if ever decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + width * 4) * 2)  # two zero rows; the rest is "missing"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


# -- orientation, metadata, GPS ----------------------------------------------------------


def test_exif_orientation_6_is_applied() -> None:
    im = Image.new("RGB", (80, 40), BLUE)
    im.paste(RED, (0, 0, 20, 20))  # the stored top-left corner is red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    result = process_image(encode(im, "JPEG", exif=exif, quality=95))
    assert (result.width, result.height) == (40, 80)
    out = reopen(result.image)
    assert out.size == (40, 80)
    # After a clockwise quarter turn the stored top-left ends up top-right.
    assert close_to(out.getpixel((35, 4)), RED)
    assert close_to(out.getpixel((4, 4)), BLUE)
    assert close_to(out.getpixel((35, 75)), BLUE)
    assert 0x0112 not in out.getexif()


@pytest.mark.parametrize(("lat_ref", "lon_ref", "expected"), [
    ("S", "W", (-33.856, -151.21)),
    ("N", "E", (33.856, 151.21)),
])
def test_gps_is_returned_and_every_bit_of_metadata_is_stripped(
        lat_ref: str, lon_ref: str, expected: tuple[float, float]) -> None:
    exif = gps_exif(lat_ref, (33.0, 51.0, 21.6), lon_ref, (151.0, 12.0, 36.0))
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">secret-xmp</x:xmpmeta>'
    source = encode(Image.new("RGB", (64, 48), (10, 120, 30)), "JPEG", exif=exif,
                    comment=b"secret-comment", xmp=xmp)
    assert b"Exif" in source and b"SecretCam" in source and b"secret-xmp" in source

    result = process_image(source)
    assert result.gps == pytest.approx(expected, abs=1e-9)
    for blob in (result.image, result.thumbnail):
        assert b"Exif" not in blob
        assert b"SecretCam" not in blob
        assert b"secret-comment" not in blob
        assert b"secret-xmp" not in blob and b"xmpmeta" not in blob
        assert exif.tobytes()[8:40] not in blob
        out = reopen(blob)
        assert dict(out.getexif()) == {}
        assert not {"exif", "xmp", "comment"} & set(out.info)


def test_photo_without_gps_and_null_island_give_none() -> None:
    assert process_image(encode(Image.new("RGB", (8, 8)), "JPEG")).gps is None
    zero = gps_exif("N", (0.0, 0.0, 0.0), "E", (0.0, 0.0, 0.0))
    assert process_image(encode(Image.new("RGB", (8, 8)), "JPEG", exif=zero)).gps is None


def test_png_text_chunks_and_exif_are_stripped() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "secret-author")
    exif = gps_exif("N", (31.0, 0.0, 0.0), "E", (117.0, 0.0, 0.0))
    result = process_image(encode(Image.new("RGB", (20, 20), RED), "PNG", pnginfo=info,
                                  exif=exif))
    assert result.gps == pytest.approx((31.0, 117.0))
    assert result.mime == "image/jpeg"  # no transparency: a photo is a JPEG
    assert b"secret-author" not in result.image and b"Exif" not in result.image


def test_rgb_icc_profile_is_kept_and_cmyk_profile_dropped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = process_image(encode(Image.new("RGB", (16, 16), RED), "JPEG", icc_profile=srgb))
    assert reopen(rgb.image).info.get("icc_profile") == srgb
    assert "icc_profile" not in reopen(rgb.thumbnail).info

    fake_cmyk_profile = bytes(16) + b"CMYK" + bytes(108)
    cmyk = process_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG",
                                icc_profile=fake_cmyk_profile))
    out = reopen(cmyk.image)
    assert out.mode == "RGB" and "icc_profile" not in out.info
    assert close_to(out.getpixel((8, 8)), RED)


# -- formats and modes ---------------------------------------------------------------------


def test_result_fields() -> None:
    result = process_image(encode(Image.new("RGB", (30, 20), BLUE), "JPEG"))
    assert result.format == "JPEG" and result.mime == "image/jpeg" and result.suffix == "jpg"
    assert result.sha256 == hashlib.sha256(result.image).hexdigest()
    assert result.image.startswith(b"\xff\xd8\xff")
    assert result.thumbnail.startswith(b"\xff\xd8\xff")


def test_png_with_alpha_stays_a_transparent_png() -> None:
    im = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (0, 0, 20, 30))
    result = process_image(encode(im, "PNG"))
    assert result.mime == "image/png" and result.suffix == "png" and result.format == "PNG"
    out = reopen(result.image)
    assert out.mode == "RGBA"
    assert out.getpixel((5, 5)) == (255, 0, 0, 255)
    assert out.getpixel((35, 5))[3] == 0  # type: ignore[index]
    thumb = reopen(result.thumbnail)
    assert thumb.format == "JPEG" and thumb.mode == "RGB"
    assert close_to(thumb.getpixel((35, 5)), (255, 255, 255))  # transparent over white


def test_png_whose_alpha_is_all_opaque_becomes_a_jpeg() -> None:
    result = process_image(encode(Image.new("RGBA", (10, 10), (1, 2, 3, 255)), "PNG"))
    assert result.mime == "image/jpeg" and reopen(result.image).mode == "RGB"


def test_palette_gif_first_frame() -> None:
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759
    frames = []
    for index in (0, 1, 2):
        frame = Image.new("P", (24, 16), index)
        frame.putpalette(palette)
        frames.append(frame)
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = process_image(gif)
    assert result.format == "GIF" and result.mime == "image/jpeg"
    assert (result.width, result.height) == (24, 16)
    assert close_to(reopen(result.image).getpixel((3, 3)), RED)  # the first frame


def test_palette_gif_with_transparency_becomes_png() -> None:
    frame = Image.new("P", (20, 20), 0)
    frame.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    frame.paste(1, (0, 0, 10, 10))
    result = process_image(encode(frame, "GIF", transparency=0))
    out = reopen(result.image)
    assert result.mime == "image/png"
    assert out.getpixel((2, 2)) == (0, 255, 0, 255)
    assert out.getpixel((15, 15))[3] == 0  # type: ignore[index]


@pytest.mark.parametrize(("mode", "fmt", "out_mode"), [
    ("CMYK", "JPEG", "RGB"),
    ("L", "JPEG", "L"),
    ("1", "PNG", "L"),
    ("I;16", "PNG", "L"),
    ("LA", "PNG", "RGBA"),
    ("P", "BMP", "RGB"),
    ("RGB", "WEBP", "RGB"),
])
def test_modes_are_converted(mode: str, fmt: str, out_mode: str) -> None:
    im = Image.new(mode, (12, 9))
    if mode == "P":
        im.putpalette([200, 30, 10] * 256)
    result = process_image(encode(im, fmt))
    out = reopen(result.image)
    assert out.mode == out_mode and out.size == (12, 9)
    assert result.format == fmt


def test_sixteen_bit_gray_keeps_its_brightness() -> None:
    im = Image.frombytes("I;16", (4, 4), struct.pack("<16H", *([65535, 65535, 32768, 32768] * 4)))
    out = reopen(process_image(encode(im, "PNG")).image)
    assert out.getpixel((0, 0)) >= 250  # type: ignore[operator]
    assert 110 <= out.getpixel((3, 0)) <= 145  # type: ignore[operator]


@pytest.mark.parametrize(("size", "thumb_size", "expected"), [
    ((1000, 400), 320, (320, 128)),
    ((300, 900), 320, (107, 320)),
    ((100, 50), 320, (100, 50)),  # never enlarged
    ((1000, 1000), 64, (64, 64)),
])
def test_thumbnail_bounds(size: tuple[int, int], thumb_size: int,
                          expected: tuple[int, int]) -> None:
    result = process_image(encode(Image.new("RGB", size, BLUE), "PNG"), thumb_size=thumb_size)
    thumb = reopen(result.thumbnail)
    assert thumb.format == "JPEG"
    assert max(thumb.size) <= thumb_size
    assert thumb.size == expected
    assert (result.width, result.height) == size


# -- refusals -----------------------------------------------------------------------------


def refused(data: bytes, **kw: int) -> MediaRejected:
    with pytest.raises(MediaRejected) as info:
        process_image(data, **kw)
    exc = info.value
    assert isinstance(exc, InvalidInput)
    assert exc.reason and exc.key in TEXTS["zh"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in sentence(exc))  # a sentence in Chinese
    return exc


@pytest.mark.parametrize(("width", "height", "reason"), [
    (7000, 7000, "too_many_pixels"),  # over our 40 MP, under Pillow's global limit
    (10000, 10000, "decompression_bomb"),  # Pillow's DecompressionBombWarning range
    (30000, 30000, "decompression_bomb"),  # Pillow's DecompressionBombError range: 3.6 GB
])
def test_decompression_bombs_are_refused_quickly(width: int, height: int, reason: str) -> None:
    data = png_claiming(width, height)
    assert len(data) < 1000
    filters = list(warnings.filters)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exc = refused(data)
    assert time.perf_counter() - started < 0.5  # refused from the header, nothing decoded
    assert exc.key == MSG_TOO_MANY_PIXELS and sentence(exc) == "图片尺寸过大，无法处理"
    assert exc.reason.startswith(reason)
    assert caught == []  # Pillow's warning did not leak
    assert warnings.filters == filters  # nor were the process's filters changed


def test_own_pixel_limit_holds_when_pillows_global_limit_is_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert refused(png_claiming(30000, 30000)).reason.startswith("too_many_pixels")
    assert refused(png_claiming(300, 300), max_pixels=80_000).reason.startswith(
        "too_many_pixels")


def test_pixel_limit_is_per_call() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    refused(data, max_pixels=9_999)
    assert process_image(data, max_pixels=10_000).width == 100


def test_over_max_bytes_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an oversized upload")

    monkeypatch.setattr(Image, "open", never)
    exc = refused(b"\xff\xd8\xff" + bytes(2000), max_bytes=1000)
    assert exc.reason.startswith("too_large")
    assert sentence(refused(bytes(21 * 2**20))) == "图片太大（超过20MB），请压缩后再发"


def test_truncated_jpeg() -> None:
    im = Image.effect_noise((200, 200), 64).convert("RGB")
    data = encode(im, "JPEG")
    exc = refused(data[: len(data) // 2])
    assert exc.reason.startswith("undecodable")


@pytest.mark.parametrize("data", [
    b"",
    random.Random(4).randbytes(5000),
    "居民反映：楼道灯坏了\n".encode() * 20,
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">'
    b'<rect width="9" height="9"/></svg>',
    b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n",
    b"\x89PNG\r\n\x1a\n",  # a signature and nothing else
], ids=["empty", "random", "text", "svg", "pdf", "png-signature-only"])
def test_non_images_are_refused(data: bytes) -> None:
    refused(data)


def test_formats_outside_the_list_are_refused() -> None:
    refused(encode(Image.new("RGB", (8, 8)), "TIFF"))
    refused(encode(Image.new("RGB", (16, 16)), "ICO"))


def test_corrupt_exif_does_not_lose_the_photo() -> None:
    data = encode(Image.new("RGB", (20, 10), RED), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    result = process_image(data)
    assert (result.width, result.height) == (20, 10) and result.gps is None
    assert b"garbage" not in result.image


def test_threads_leave_the_warning_filters_as_they_were() -> None:
    from concurrent.futures import ThreadPoolExecutor

    good = encode(Image.new("RGB", (200, 100), BLUE), "JPEG")
    bomb = png_claiming(10000, 10000)
    filters = list(warnings.filters)

    def one(i: int) -> str:
        try:
            return process_image(bomb if i % 2 else good).mime
        except MediaRejected as exc:
            return exc.reason.split(":")[0]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(64)))
    assert results == ["image/jpeg", "decompression_bomb"] * 32
    assert warnings.filters == filters
