"""Voice, video and documents by magic bytes; the content-addressed media store; settings."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from pathlib import Path

import pytest

from bot.flows.refusals import sentence
from core.errors import InvalidInput, MediaRejected, NotFound
from core.media import MediaStore, check_media, max_bytes_for
from core.settings import Settings

MB = 2**20
OGG_OPUS = b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead\x01\x01" + bytes(40)
AMR = b"#!AMR\n" + b"\x3c" + bytes(31) * 20
AMR_WB = b"#!AMR-WB\n" + bytes(200)
MP4 = struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00isomiso2" + bytes(300)
M4A = struct.pack(">I", 20) + b"ftypM4A \x00\x00\x00\x00M4A " + bytes(300)
MOV = struct.pack(">I", 20) + b"ftypqt  \x00\x00\x02\x00qt  " + bytes(300)
GP3 = struct.pack(">I", 20) + b"ftyp3gp4\x00\x00\x02\x003gp4" + bytes(300)
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + bytes(200)
MP3_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400)
MP3_BARE = b"\xff\xfb\x90\x64" + bytes(400)
WAV = b"RIFF" + struct.pack("<I", 100) + b"WAVEfmt " + bytes(100)
AVI = b"RIFF" + struct.pack("<I", 100) + b"AVI LIST" + bytes(100)
SPEEX_RAW = bytes(range(1, 200)) * 3  # WeChat's speex: no magic bytes at all


def zipped(*names: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            z.writestr(name, "<x/>")
    return out.getvalue()


# -- voice and video -----------------------------------------------------------------------


@pytest.mark.parametrize(("data", "mime", "suffix"), [
    (OGG_OPUS, "audio/ogg", "ogg"),  # Telegram voice notes
    (AMR, "audio/amr", "amr"),  # WeChat voice
    (AMR_WB, "audio/amr-wb", "awb"),
    (MP3_ID3, "audio/mpeg", "mp3"),
    (MP3_BARE, "audio/mpeg", "mp3"),
    (WAV, "audio/wav", "wav"),
    (M4A, "audio/mp4", "m4a"),
    (MP4, "audio/mp4", "m4a"),  # Safari records audio into an MP4 box
    (WEBM, "audio/webm", "webm"),  # Chrome and Firefox record audio into WebM
])
def test_voice_is_sniffed(data: bytes, mime: str, suffix: str) -> None:
    info = check_media(data, kind="voice", max_bytes=MB)
    assert (info.kind, info.mime, info.suffix) == ("voice", mime, suffix)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("data", "mime", "suffix"), [
    (MP4, "video/mp4", "mp4"),
    (MOV, "video/quicktime", "mov"),
    (GP3, "video/3gpp", "3gp"),
    (WEBM, "video/webm", "webm"),
    (AVI, "video/x-msvideo", "avi"),
])
def test_video_is_sniffed(data: bytes, mime: str, suffix: str) -> None:
    info = check_media(data, kind="video", max_bytes=MB)
    assert (info.mime, info.suffix) == (mime, suffix)


def test_wechat_speex_is_taken_on_the_platforms_word_only() -> None:
    info = check_media(SPEEX_RAW, kind="voice", max_bytes=MB, declared_format="speex")
    assert (info.mime, info.suffix) == ("audio/speex", "spx")
    with pytest.raises(MediaRejected):
        check_media(SPEEX_RAW, kind="voice", max_bytes=MB)
    with pytest.raises(MediaRejected):  # a declared format never overrides what was sniffed
        check_media(b"%PDF-1.4\n" + bytes(50), kind="voice", max_bytes=MB,
                    declared_format="speex")


@pytest.mark.parametrize(("data", "kind"), [
    (AMR, "video"),
    (b"%PDF-1.7\n" + bytes(50), "voice"),
    (b"\xff\xd8\xff\xe0" + bytes(100), "video"),
    (bytes(range(256)) * 4, "voice"),
    ("居民反映：楼道灯坏了".encode(), "video"),
])
def test_wrong_kind_is_refused(data: bytes, kind: str) -> None:
    with pytest.raises(MediaRejected) as info:
        check_media(data, kind=kind, max_bytes=MB)
    assert isinstance(info.value, InvalidInput)
    assert info.value.reason.startswith(f"not_{kind}")
    assert "无法识别" in sentence(info.value)


@pytest.mark.parametrize(("kind", "message"), [
    ("voice", "语音太大（超过1MB），请分段发送"),
    ("video", "视频太大（超过1MB），请剪短或压缩后再发"),
    ("document", "文件太大（超过1MB），请压缩后再发"),
])
def test_over_the_limit_is_refused(kind: str, message: str) -> None:
    with pytest.raises(MediaRejected) as info:
        check_media(MP4 + bytes(MB), kind=kind, max_bytes=MB)
    assert sentence(info.value) == message
    assert info.value.reason.startswith("too_large")
    assert check_media(MP4, kind="video", max_bytes=len(MP4)).size == len(MP4)


def test_default_video_limit_message() -> None:
    s = Settings(_env_file=None)
    with pytest.raises(MediaRejected) as info:
        check_media(bytes(50 * MB + 1), kind="video", max_bytes=max_bytes_for(s, "video"))
    assert sentence(info.value).startswith("视频太大（超过50MB）")


def test_empty_and_unknown_kind() -> None:
    with pytest.raises(MediaRejected):
        check_media(b"", kind="voice", max_bytes=MB)
    with pytest.raises(ValueError):
        check_media(AMR, kind="sticker", max_bytes=MB)


# -- documents -----------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "filename", "mime", "suffix"), [
    (b"%PDF-1.7\n" + bytes(50), None, "application/pdf", "pdf"),
    (zipped("[Content_Types].xml", "xl/workbook.xml"), "名单.xlsx",
     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    (zipped("[Content_Types].xml", "word/document.xml"), None,
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
    (zipped("a.txt"), None, "application/zip", "zip"),
    (zipped("a.txt"), "report.xlsx", "application/zip", "xlsx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "old.xls",
     "application/x-ole-storage", "xls"),
    ("姓名,电话\n张三,13800000000\n".encode(), "people.csv", "text/plain", "csv"),
    ("楼道灯坏了".encode("gb18030"), None, "text/plain", "txt"),
    (b"\xff\xd8\xff\xe0" + bytes(100), "photo.jpeg", "image/jpeg", "jpeg"),
    (AMR, None, "audio/amr", "amr"),
    (bytes(range(256)) * 4, None, "application/octet-stream", "bin"),
    (b"%PDF-1.7\n" + bytes(50), "evil.exe", "application/pdf", "pdf"),  # name cannot pick
    (b"%PDF-1.7\n" + bytes(50), "../../x.pdf/", "application/pdf", "pdf"),
])
def test_documents_are_sniffed(data: bytes, filename: str | None, mime: str,
                               suffix: str) -> None:
    info = check_media(data, kind="document", max_bytes=MB, filename=filename)
    assert (info.mime, info.suffix) == (mime, suffix)


@pytest.mark.parametrize("data", [
    b"MZ\x90\x00" + bytes(100),  # Windows PE
    b"\x7fELF\x02\x01\x01" + bytes(100),
    b"#!/bin/sh\nrm -rf /\n",
    b"\xcf\xfa\xed\xfe" + bytes(100),  # Mach-O
    zipped("AndroidManifest.xml", "classes.dex"),
    b"<!DOCTYPE html><html><script>alert(1)</script></html>",
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
    b"  <svg onload=alert(1)>",
], ids=["pe", "elf", "script", "macho", "apk", "html", "svg", "svg-fragment"])
def test_executables_and_markup_are_refused(data: bytes) -> None:
    with pytest.raises(MediaRejected) as info:
        check_media(data, kind="document", max_bytes=MB)
    assert "不接收" in sentence(info.value)


# -- the store -----------------------------------------------------------------------------


def test_store_creates_nothing_until_the_first_put(tmp_path: Path) -> None:
    root = tmp_path / "media"
    store = MediaStore(root)
    assert not root.exists() and store.size_limit is None
    ref = store.put(b"hello", "txt")
    digest = hashlib.sha256(b"hello").hexdigest()
    assert ref == f"{digest[:2]}/{digest[2:4]}/{digest}.txt"
    assert (root / ref).read_bytes() == b"hello"
    assert store.open(ref) == b"hello"
    assert store.path(ref) == root.resolve() / ref
    assert store.exists(ref)


def test_store_put_is_idempotent(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    ref = store.put(b"photo-bytes", ".JPG")
    assert ref.endswith(".jpg")
    before = (tmp_path / ref).stat()
    assert store.put(b"photo-bytes", "jpg") == ref
    after = (tmp_path / ref).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [tmp_path / ref]  # one file, no leftover temporary files
    assert store.put(b"photo-bytes", "png") != ref
    assert store.put(b"other", "jpg") != ref
    assert MediaStore.ref_for(b"photo-bytes", "jpg") == ref


def test_store_repairs_a_partial_file(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    ref = MediaStore.ref_for(b"the whole thing", "bin")
    (tmp_path / ref).parent.mkdir(parents=True)
    (tmp_path / ref).write_bytes(b"the wh")
    assert store.put(b"the whole thing", "bin") == ref
    assert store.open(ref) == b"the whole thing"


GOOD = MediaStore.ref_for(b"x", "txt")


@pytest.mark.parametrize("ref", [
    "../etc/passwd",
    "/etc/passwd",
    f"../{GOOD}",
    f"{GOOD[:6]}../../{GOOD[6:]}",
    f"/{GOOD}",
    GOOD.upper(),
    GOOD.replace(GOOD[:2], "00", 1) if not GOOD.startswith("00") else GOOD.replace("00", "11", 1),
    GOOD + "/",
    GOOD.replace(".txt", ".t/x"),
    GOOD.replace(".txt", ""),
    GOOD.replace("/", "\\"),
    "",
])
def test_store_refuses_refs_that_are_not_refs(tmp_path: Path, ref: str) -> None:
    store = MediaStore(tmp_path)
    with pytest.raises(InvalidInput):
        store.path(ref)
    with pytest.raises(InvalidInput):
        store.open(ref)


def test_store_refuses_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "media"
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    store = MediaStore(root)
    ref = MediaStore.ref_for(b"x", "txt")
    (root / ref).parent.mkdir(parents=True)
    (root / ref).symlink_to(secret)
    with pytest.raises(InvalidInput):
        store.open(ref)
    with pytest.raises(InvalidInput):
        store.put(b"x", "txt")
    assert secret.read_bytes() == b"secret"

    outside = tmp_path / "outside"
    outside.mkdir()
    other = MediaStore.ref_for(b"y", "txt")
    (root / other[:2]).mkdir(exist_ok=True)
    (root / other[:5]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput):
        store.put(b"y", "txt")
    assert list(outside.iterdir()) == []


def test_store_open_missing_and_bad_suffix_and_limit(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, size_limit=10)
    with pytest.raises(NotFound):
        store.open(MediaStore.ref_for(b"never stored", "jpg"))
    for suffix in ("", "../x", "tar.gz", "a" * 11, "exe "):
        with pytest.raises(InvalidInput):
            store.put(b"x", suffix)
    with pytest.raises(MediaRejected):
        store.put(b"x" * 11, "bin")
    assert store.size_limit == 10


# -- settings ------------------------------------------------------------------------------


def test_media_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings(_env_file=None)
    assert s.media_dir == "./media"
    assert (s.max_photo_bytes, s.max_voice_bytes, s.max_video_bytes, s.max_document_bytes) == (
        20 * MB, 20 * MB, 50 * MB, 20 * MB)
    assert s.max_image_pixels == 40_000_000
    assert max_bytes_for(s, "photo") == 20 * MB and max_bytes_for(s, "video") == 50 * MB
    with pytest.raises(ValueError):
        max_bytes_for(s, "sticker")

    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("MAX_VIDEO_BYTES", "1000")
    s = Settings(_env_file=None)
    store = MediaStore.from_settings(s)
    assert store.root == tmp_path / "m" and store.size_limit == 20 * MB
    assert not store.root.exists()
