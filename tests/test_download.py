"""Downloads, mirrors, safe extraction and manifests against a local HTTP server (no internet)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import zipfile
from dataclasses import replace

import pytest
from data_fixtures import (
    Route,
    amazon2018_files,
    amazon2023_files,
    http_server,
    lastfm_files,
    make_tar,
    make_zip,
    ml100k_files,
    mlcsv_files,
    write_files,
    yelp_files,
)

from recsae.data import download as download_module
from recsae.data import lastfm, movielens
from recsae.data.download import (
    ChecksumError,
    DownloadError,
    DownloadOptions,
    NotFoundError,
    download,
)
from recsae.data.extract import ArchiveError, ExtractLimits, UnsafeArchiveError, safe_extract
from recsae.data.fetch import (
    MANIFEST,
    MissingRawFileError,
    RawDataChangedError,
    check_raw_unchanged,
    fetch_raw,
    verify_manifest,
)
from recsae.data.prepare import prepare_dataset
from recsae.errors import DataError

FAST = DownloadOptions.from_settings(
    {"retries": 3, "backoff": 0.0, "connect_timeout": 5, "read_timeout": 5}
)
FAST_SETTINGS = {"retries": 3, "backoff": 0.0}
BODY = bytes(range(256)) * 400


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def unpinned(monkeypatch):
    """The tiny fixture files stand in for the real key files: drop the real key-file pins."""
    variant = movielens.VARIANTS["ml-100k"]
    monkeypatch.setitem(movielens.VARIANTS, "ml-100k", replace(variant, key_sha256={}))
    monkeypatch.setattr(lastfm, "KEY_SHA256", {})


def test_download_verifies_and_renames(tmp_path):
    with http_server({"/f.bin": Route(BODY)}) as srv:
        out = download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", sha256=sha(BODY), options=FAST)
    assert out.read_bytes() == BODY
    assert not (tmp_path / "f.bin.part").exists()


def test_checksum_mismatch_deletes_partial_and_names_digests(tmp_path):
    wrong = sha(b"something else")
    with http_server({"/f.bin": Route(BODY)}) as srv, pytest.raises(ChecksumError) as err:
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", sha256=wrong, options=FAST)
    message = str(err.value)
    assert "/f.bin" in message and wrong in message and sha(BODY) in message
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_resumes_with_range(tmp_path):
    route = Route(BODY, truncate_first=1)
    with http_server({"/f.bin": route}) as srv:
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", md5=hashlib.md5(BODY).hexdigest(),
                 options=FAST)  # fmt: skip
    assert (tmp_path / "f.bin").read_bytes() == BODY
    ranges = [r for _, r in srv.requests]
    assert ranges[0] is None and ranges[1] == f"bytes={len(BODY) // 2}-"


def test_truncated_transfer_restarts_when_range_ignored(tmp_path):
    with http_server({"/f.bin": Route(BODY, truncate_first=2, ranges=False)}) as srv:
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", sha256=sha(BODY), options=FAST)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert len(srv.requests) == 3


def test_server_errors_are_retried(tmp_path):
    with http_server({"/f.bin": Route(BODY, fail_first=2)}) as srv:
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", sha256=sha(BODY), options=FAST)
    assert len(srv.requests) == 3


def test_persistent_server_error_fails_clearly(tmp_path):
    with (
        http_server({"/f.bin": Route(BODY, fail_first=99)}) as srv,
        pytest.raises(DownloadError) as err,
    ):
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", options=FAST)
    assert "HTTP 500" in str(err.value) and "/f.bin" in str(err.value)
    assert not (tmp_path / "f.bin").exists()


def test_not_found_is_not_retried(tmp_path):
    with http_server({}) as srv, pytest.raises(NotFoundError):
        download(f"{srv.base_url}/missing.zip", tmp_path / "missing.zip", options=FAST)
    assert len(srv.requests) == 1


# --- safe extraction ------------------------------------------------------------------------


def _evil_zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(name, b"evil")
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"])
def test_zip_traversal_refused(tmp_path, name):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_evil_zip(name))
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(archive, tmp_path / "out")
    assert name in str(err.value) and "bad.zip" in str(err.value)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "ok.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_tar_links_and_devices_refused(tmp_path, kind):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("data/link")
        info.type = kind
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="data/link"):
        safe_extract(archive, tmp_path / "out")


def test_gzip_single_file_extracts(tmp_path):
    import gzip

    archive = tmp_path / "data.json.gz"
    archive.write_bytes(gzip.compress(b'{"a": 1}\n'))
    (out,) = safe_extract(archive, tmp_path / "out")
    assert out.name == "data.json" and out.read_bytes() == b'{"a": 1}\n'


# --- fetch_raw: upstream, mirrors, pre-placed files, manifests ------------------------------


def _ml100k_settings(**extra):
    return {"source": "movielens", "variant": "ml-100k", "download": FAST_SETTINGS, **extra}


def test_fetch_upstream_zip_with_published_checksum_mismatch(tmp_path, monkeypatch):
    archive = make_zip(ml100k_files(), prefix="ml-100k/")
    with http_server({"/ml/ml-100k.zip": Route(archive)}) as srv:
        monkeypatch.setattr(movielens, "BASE_URL", f"{srv.base_url}/ml")
        with pytest.raises(ChecksumError) as err:
            fetch_raw("ml100k", _ml100k_settings(), tmp_path / "raw", mirror=None)
    assert movielens.VARIANTS["ml-100k"].sha256 in str(err.value)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == []


def test_fetch_upstream_zip_extracts_and_records_manifest(tmp_path, monkeypatch):
    archive = make_zip(ml100k_files(), prefix="ml-100k/")
    variant = movielens.Variant("100k", ("u.data", "u.item", "u.user"), sha256=sha(archive))
    monkeypatch.setitem(movielens.VARIANTS, "ml-100k", variant)
    with http_server({"/ml/ml-100k.zip": Route(archive, fail_first=1, truncate_first=1)}) as srv:
        monkeypatch.setattr(movielens, "BASE_URL", f"{srv.base_url}/ml")
        raw = fetch_raw("ml100k", _ml100k_settings(), tmp_path / "raw", mirror=None)
        fetch_raw("ml100k", _ml100k_settings(), tmp_path / "raw", mirror=None)
    assert len(srv.requests) == 3  # 500, truncated, resumed; the second fetch reuses the files
    manifest = (raw / "MANIFEST.json").read_text()
    assert sha(ml100k_files()["u.data"]) in manifest
    assert (raw / "u.item").read_bytes() == ml100k_files()["u.item"]


def test_changed_key_file_fails_naming_it(tmp_path, unpinned):
    mirror = tmp_path / "mirror"
    write_files(mirror / "ml-100k", ml100k_files())
    raw = fetch_raw("ml100k", _ml100k_settings(), tmp_path / "raw", mirror=str(mirror))
    (raw / "u.data").write_bytes(b"1\t10\t5\t1\n")
    with pytest.raises(RawDataChangedError, match="u.data"):
        fetch_raw("ml100k", _ml100k_settings(), raw, mirror=str(mirror))
    with pytest.raises(RawDataChangedError, match="u.data"):
        prepare_dataset("ml100k", _ml100k_settings(), raw, tmp_path / "data", seed=0)


def test_local_mirror_with_extracted_files(tmp_path, unpinned):
    mirror = tmp_path / "mirror"
    write_files(mirror / "hetrec2011-lastfm-2k", lastfm_files())
    raw = fetch_raw("lastfm", {"source": "lastfm"}, tmp_path / "raw", mirror=str(mirror))
    assert (raw / "tags.dat").read_bytes() == lastfm_files()["tags.dat"]
    stats = prepare_dataset("lastfm", {"source": "lastfm"}, raw, tmp_path / "data", seed=0)
    assert stats["n_interactions"] == 3


def test_local_mirror_archive_is_verified(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    archive = make_zip(lastfm_files())
    write_files(mirror / "hetrec2011-lastfm-2k", {"hetrec2011-lastfm-2k.zip": archive})
    with pytest.raises(ChecksumError, match=lastfm.SHA256):
        fetch_raw("lastfm", {"source": "lastfm"}, tmp_path / "raw", mirror=str(mirror))
    monkeypatch.setattr(lastfm, "SHA256", sha(archive))
    raw = fetch_raw("lastfm", {"source": "lastfm"}, tmp_path / "raw", mirror=str(mirror))
    assert (raw / "user_artists.dat").is_file()


def test_http_mirror_falls_back_to_extracted_files(tmp_path, unpinned):
    routes = {f"/m/hetrec2011-lastfm-2k/{n}": Route(b) for n, b in lastfm_files().items()}
    with http_server(routes) as srv:
        raw = fetch_raw("lastfm", {"source": "lastfm", "download": FAST_SETTINGS},
                        tmp_path / "raw", mirror=f"{srv.base_url}/m")  # fmt: skip
    tried = [path for path, _ in srv.requests]
    assert tried[:2] == ["/m/lastfm/hetrec2011-lastfm-2k.zip", "/m/lastfm/user_artists.dat"]
    assert (raw / "artists.dat").read_bytes() == lastfm_files()["artists.dat"]


def test_mirror_without_the_files_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="ml-100k.zip"):
        fetch_raw("ml100k", _ml100k_settings(), tmp_path / "raw", mirror=str(tmp_path))


def test_preplaced_raw_files_are_used_without_downloading(tmp_path, monkeypatch):
    raw = write_files(tmp_path / "raw", ml100k_files())
    with http_server({}) as srv:
        monkeypatch.setattr(movielens, "BASE_URL", srv.base_url)
        fetch_raw("ml100k", _ml100k_settings(), raw, mirror=None)
    assert srv.requests == []
    assert (raw / "MANIFEST.json").is_file()


def test_traversal_archive_refused_by_fetch(tmp_path, monkeypatch):
    archive = _evil_zip("../../evil.txt")
    monkeypatch.setitem(movielens.VARIANTS, "ml-100k", movielens.Variant("100k", ("u.data",)))
    md5 = hashlib.md5(archive).hexdigest()
    routes = {"/ml-100k.zip": Route(archive), "/ml-100k.zip.md5": Route(md5.encode())}
    with http_server(routes) as srv:
        monkeypatch.setattr(movielens, "BASE_URL", srv.base_url)
        with pytest.raises(UnsafeArchiveError, match=r"\.\./\.\./evil\.txt"):
            fetch_raw("ml100k", _ml100k_settings(), tmp_path / "a" / "raw", mirror=None)
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    ("source", "files", "category", "n_reviews"),
    [("amazon2018", amazon2018_files("Toys"), "Toys", 3),
     ("amazon2023", amazon2023_files("All_Beauty"), "All_Beauty", 2)],
)  # fmt: skip
def test_amazon_gz_files_from_http_mirror(tmp_path, source, files, category, n_reviews):
    routes = {f"/m/{source}/{name}": Route(data) for name, data in files.items()}
    settings = {"source": source, "category": category, "download": FAST_SETTINGS}
    with http_server(routes) as srv:
        raw = fetch_raw("amz", settings, tmp_path / "raw", mirror=f"{srv.base_url}/m")
    for name, data in files.items():
        assert (raw / name).read_bytes() == data
    stats = prepare_dataset("amz", settings, raw, tmp_path / "data", seed=0)
    assert stats["n_interactions"] == n_reviews


def test_yelp_tar_from_user_url(tmp_path):
    tar = make_tar(yelp_files(), mode="w")
    settings = {"source": "yelp", "download": FAST_SETTINGS}
    with http_server({"/dl/yelp_dataset.tar": Route(tar)}) as srv:
        settings["url"] = f"{srv.base_url}/dl/yelp_dataset.tar?token=abc"
        raw = fetch_raw("yelp", settings, tmp_path / "raw", mirror=None)
    assert (raw / "yelp_dataset.tar").is_file()
    for name, data in yelp_files().items():
        assert (raw / name).read_bytes() == data


def test_yelp_outer_zip_holding_a_tar_from_local_archive(tmp_path):
    inner = make_tar(yelp_files(), prefix="yelp_dataset/", mode="w:gz")
    outer = tmp_path / "downloads" / "yelp_dataset.zip"
    outer.parent.mkdir()
    outer.write_bytes(make_zip({"yelp_dataset.tar.gz": inner, "Dataset_User_Agreement.pdf": b"%"}))
    settings = {"source": "yelp", "archive": str(outer)}
    raw = fetch_raw("yelp", settings, tmp_path / "raw", mirror=None)
    stats = prepare_dataset("yelp", settings, raw, tmp_path / "data", seed=0)
    assert stats["n_interactions"] == 2


def test_yelp_without_url_or_archive_explains_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        fetch_raw("yelp", {"source": "yelp"}, tmp_path / "raw", mirror=None)
    message = str(err.value)
    assert "https://business.yelp.com/data/resources/open-dataset/" in message
    assert "datasets.<name>.archive" in message


def test_synthetic_fetch_writes_an_empty_manifest(tmp_path):
    raw = fetch_raw("demo", {"source": "synthetic"}, tmp_path / "raw", mirror=None)
    assert '"files": {}' in (raw / "MANIFEST.json").read_text()


# --- issue 13: damaged or stuck raw data ----------------------------------------------------


def test_archive_that_fails_to_extract_is_moved_aside_and_fetched_again(tmp_path):
    """Item 1: a truncated archive without a pinned checksum is not reused by the next run."""
    good = make_tar(yelp_files(), mode="w")
    bad = good[:600]  # the first header and part of the first member
    settings = {"source": "yelp", "download": FAST_SETTINGS}
    with http_server({"/dl/yelp_dataset.tar": Route(bad)}) as srv:
        settings["url"] = f"{srv.base_url}/dl/yelp_dataset.tar"
        with pytest.raises(ArchiveError) as err:
            fetch_raw("yelp", settings, tmp_path / "raw", mirror=None)
    assert "yelp_dataset.tar" in str(err.value) and "rejected" in str(err.value)
    assert not (tmp_path / "raw" / "yelp_dataset.tar").exists()
    assert (tmp_path / "raw" / "yelp_dataset.tar.rejected").read_bytes() == bad
    with http_server({"/dl/yelp_dataset.tar": Route(good)}) as srv:
        settings["url"] = f"{srv.base_url}/dl/yelp_dataset.tar"
        raw = fetch_raw("yelp", settings, tmp_path / "raw", mirror=None)
    assert len(srv.requests) == 1
    for name, data in yelp_files().items():
        assert (raw / name).read_bytes() == data


def test_stale_partial_of_another_version_restarts_from_byte_zero(tmp_path):
    """Item 2: a .part left by an older remote file is not joined to the new file's tail."""
    old, new = b"o" * 5000, b"n" * 9000
    with http_server({"/f.bin": Route(old, etag='"old"', truncate_first=1)}) as srv:
        url = f"{srv.base_url}/f.bin"
        with pytest.raises(DownloadError):
            download(url, tmp_path / "f.bin", options=replace(FAST, retries=0))
        assert (tmp_path / "f.bin.part").read_bytes() == old[:2500]
        srv.routes["/f.bin"] = Route(new, etag='"new"')
        download(url, tmp_path / "f.bin", options=FAST)
    assert (tmp_path / "f.bin").read_bytes() == new
    assert srv.if_ranges == [None, '"old"']
    assert not (tmp_path / "f.bin.part.validator").exists()


def test_partial_without_a_validator_is_not_resumed(tmp_path):
    """Item 2: a .part whose remote version is unknown restarts (no Range request)."""
    (tmp_path / "f.bin.part").write_bytes(b"x" * 100)
    with http_server({"/f.bin": Route(BODY)}) as srv:
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", sha256=sha(BODY), options=FAST)
    assert srv.requests[0][1] is None
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_resume_after_a_cut_sends_the_validator(tmp_path):
    """Item 2: within a run, a cut transfer resumes with If-Range set to the ETag."""
    with http_server({"/f.bin": Route(BODY, truncate_first=1, etag='"abc"')}) as srv:
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", sha256=sha(BODY), options=FAST)
    assert srv.if_ranges == [None, '"abc"']
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_server_without_validators_restarts_instead_of_resuming(tmp_path):
    with http_server({"/f.bin": Route(BODY, truncate_first=1, etag=None)}) as srv:
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", sha256=sha(BODY), options=FAST)
    assert [r for _, r in srv.requests] == [None, None]
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_mirror_key_file_cut_short_without_length_is_refused(tmp_path, monkeypatch):
    """Item 3: extracted key files from a mirror are checked against their pinned sha256."""
    files = ml100k_files()
    pins = {name: sha(data) for name, data in files.items()}
    variant = replace(movielens.VARIANTS["ml-100k"], key_sha256=pins)
    monkeypatch.setitem(movielens.VARIANTS, "ml-100k", variant)
    routes = {f"/m/ml-100k/{n}": Route(b, length=False) for n, b in files.items()}
    routes["/m/ml-100k/u.data"] = Route(files["u.data"], length=False, truncate_first=1)
    with http_server(routes) as srv, pytest.raises(ChecksumError) as err:
        fetch_raw("ml-100k", _ml100k_settings(), tmp_path / "raw", mirror=f"{srv.base_url}/m")
    assert "u.data" in str(err.value) and pins["u.data"] in str(err.value)
    assert not (tmp_path / "raw" / "u.data").exists()
    assert not (tmp_path / "raw" / MANIFEST).exists()


def test_real_key_files_are_pinned():
    """Item 3: every MovieLens 100K and Last.FM key file has a sha256 pin in the code."""
    ml100k = movielens.resources({"variant": "ml-100k"})[0]
    assert set(ml100k.key_sha256) == set(ml100k.key_files)
    assert ml100k.md5 == "0e33842e24a9c977be4e0107933c0723"
    (hetrec,) = lastfm.resources({})
    assert set(hetrec.key_sha256) == set(hetrec.key_files)
    for digest in [*ml100k.key_sha256.values(), *hetrec.key_sha256.values()]:
        assert len(digest) == 64 and int(digest, 16) >= 0


@pytest.mark.parametrize("upstream", [True, False])
def test_published_md5_beside_a_movielens_zip_is_checked(tmp_path, monkeypatch, upstream):
    """Item 3: an unpinned MovieLens zip is checked against GroupLens's <zip>.md5."""
    archive = make_zip(mlcsv_files(), prefix="ml-latest-small/")
    md5 = hashlib.md5(archive).hexdigest()
    settings = {"source": "movielens", "variant": "ml-latest-small", "download": FAST_SETTINGS}
    folder = "/ml" if upstream else "/m/ml-latest-small"
    cases = [
        (f"MD5 (ml-latest-small.zip) = {md5}\n".encode(), None),
        (f"{'0' * 32}  ml-latest-small.zip\n".encode(), ChecksumError),
        (None, ChecksumError),
    ]
    for i, (sidecar, error) in enumerate(cases):
        routes = {f"{folder}/ml-latest-small.zip": Route(archive)}
        if sidecar is not None:
            routes[f"{folder}/ml-latest-small.zip.md5"] = Route(sidecar)
        with http_server(routes) as srv:
            monkeypatch.setattr(movielens, "BASE_URL", f"{srv.base_url}/ml")
            mirror = None if upstream else f"{srv.base_url}/m"
            raw = tmp_path / f"raw{i}"
            if error is None:
                fetch_raw("mls", settings, raw, mirror=mirror)
                assert (raw / "ratings.csv").read_bytes() == mlcsv_files()["ratings.csv"]
                assert md5 in (raw / MANIFEST).read_text()
            else:
                with pytest.raises(error, match=r"ml-latest-small\.zip"):
                    fetch_raw("mls", settings, raw, mirror=mirror)
                assert not (raw / "ratings.csv").exists()
        assert any(path.endswith(".md5") for path, _ in srv.requests)


def test_edited_key_file_is_noticed_by_the_cheap_check(tmp_path):
    """Item 4: the start-up check sees an edit (and is not fooled by a mere touch)."""
    raw = write_files(tmp_path / "raw", ml100k_files())
    fetch_raw("ml100k", _ml100k_settings(), raw, mirror=None)
    check_raw_unchanged(raw)
    os.utime(raw / "u.item", ns=(1, 1))
    check_raw_unchanged(raw)
    data = (raw / "u.data").read_bytes()
    (raw / "u.data").write_bytes(data.replace(b"\t5\t", b"\t1\t", 1))
    with pytest.raises(RawDataChangedError, match=r"u\.data"):
        check_raw_unchanged(raw)
    (raw / "u.user").unlink()
    (raw / "u.data").write_bytes(data)
    with pytest.raises(MissingRawFileError, match=r"u\.user"):
        check_raw_unchanged(raw)


def test_manifest_inside_an_archive_is_never_used(tmp_path, monkeypatch):
    """Item 4: a MANIFEST.json shipped in the archive does not replace the project's own."""
    evil = {"files": {"../../../../etc/hostname": "0" * 64}}
    archive = make_zip(ml100k_files() | {MANIFEST: json.dumps(evil).encode()}, prefix="ml-100k/")
    variant = movielens.Variant("100k", ("u.data", "u.item", "u.user"), sha256=sha(archive))
    monkeypatch.setitem(movielens.VARIANTS, "ml-100k", variant)
    with http_server({"/ml-100k.zip": Route(archive)}) as srv:
        monkeypatch.setattr(movielens, "BASE_URL", srv.base_url)
        raw = fetch_raw("ml100k", _ml100k_settings(), tmp_path / "raw", mirror=None)
    files = json.loads((raw / MANIFEST).read_text())["files"]
    assert sorted(files) == ["u.data", "u.item", "u.user"]
    (raw / MANIFEST).write_text(json.dumps(evil))
    with pytest.raises(RawDataChangedError, match=r"refusing entry '\.\./"):
        verify_manifest(raw)
    with pytest.raises(RawDataChangedError, match=r"refusing entry '\.\./"):
        check_raw_unchanged(raw)


def _bomb_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("small.txt", b"ok")
        zf.writestr("zeros.bin", b"a" * (4 << 20))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar", "gzip"])
def test_extraction_over_the_size_cap_is_refused(tmp_path, kind):
    """Item 5: a member that would unpack far beyond the archive's size is refused unwritten."""
    import gzip

    zeros = b"a" * (4 << 20)
    data = {
        "zip": _bomb_zip(),
        "tar": make_tar({"small.txt": b"ok", "zeros.bin": zeros}, mode="w:gz"),
        "gzip": gzip.compress(zeros),
    }[kind]
    archive = tmp_path / {"zip": "a.zip", "tar": "a.tar.gz", "gzip": "zeros.bin.gz"}[kind]
    archive.write_bytes(data)
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(archive, tmp_path / "out")
    assert "zeros.bin" in str(err.value) and "max_extract_ratio" in str(err.value)
    assert not (tmp_path / "out" / "zeros.bin").exists()
    safe_extract(archive, tmp_path / "out2", ExtractLimits(max_ratio=1e6))
    assert (tmp_path / "out2" / "zeros.bin").stat().st_size == 4 << 20
    tight = ExtractLimits(max_ratio=1e6, max_bytes=1 << 20)
    with pytest.raises(UnsafeArchiveError, match="max_extract_gib"):
        safe_extract(archive, tmp_path / "out3", tight)


def test_extraction_cap_is_a_download_setting(tmp_path):
    archive = _bomb_zip()
    settings = {"source": "yelp", "download": FAST_SETTINGS | {"max_extract_ratio": 2}}
    with http_server({"/dl/y.zip": Route(archive)}) as srv:
        settings["url"] = f"{srv.base_url}/dl/y.zip"
        with pytest.raises(UnsafeArchiveError, match="zeros.bin"):
            fetch_raw("yelp", settings, tmp_path / "raw", mirror=None)
    assert not (tmp_path / "raw" / "zeros.bin").exists()


def test_trickling_server_hits_the_deadline(tmp_path):
    """Item 6: a server sending a few bytes a second cannot hold a download forever."""
    options = replace(FAST, deadline=0.3)
    with (
        http_server({"/f.bin": Route(BODY[:400], trickle=0.01)}) as srv,
        pytest.raises(DownloadError, match=r"deadline of 0\.3 s \(download\.deadline\)"),
    ):
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin", options=options)
    assert not (tmp_path / "f.bin").exists()


def test_progress_reports_bytes_rate_and_eta(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(download_module, "_PROGRESS_EVERY_S", 0.0)
    caplog.set_level(logging.INFO, logger="recsae.data.download")
    with http_server({"/f.bin": Route(BODY)}) as srv:
        download(f"{srv.base_url}/f.bin", tmp_path / "f.bin",
                 options=replace(FAST, chunk_size=4096))  # fmt: skip
    progress = [r.getMessage() for r in caplog.records if "MiB/s" in r.getMessage()]
    assert len(progress) >= 2
    assert any("ETA" in line and "%" in line for line in progress)


def test_missing_optional_amazon_metadata_is_skipped(tmp_path):
    """Item 8: without its metadata file, Amazon goes on (optional) or stops (required)."""
    files = amazon2018_files("Toys")
    routes = {"/m/amazon2018/Toys_5.json.gz": Route(files["Toys_5.json.gz"])}
    settings = {"source": "amazon2018", "category": "Toys", "download": FAST_SETTINGS}
    with http_server(routes) as srv:
        raw = fetch_raw("amz", settings, tmp_path / "raw", mirror=f"{srv.base_url}/m")
        manifest = json.loads((raw / MANIFEST).read_text())
        assert manifest["missing_optional"] == ["meta_Toys.json.gz"]
        stats = prepare_dataset("amz", settings, raw, tmp_path / "data", seed=0)
        assert stats["metadata"].startswith("absent") and stats["concept_families"] == {}
        assert stats["n_interactions_without_metadata"] == 3
        required = settings | {"metadata": "required"}
        with pytest.raises(MissingRawFileError, match=r"meta_Toys\.json\.gz"):
            fetch_raw("amz", required, tmp_path / "raw2", mirror=f"{srv.base_url}/m")
        with pytest.raises(DataError, match=r"meta_Toys\.json\.gz.*metadata: required"):
            prepare_dataset("amz", required, raw, tmp_path / "data2", seed=0)


def test_unsafe_category_never_becomes_a_path(tmp_path):
    """Item 11: a category with path parts is refused before any file or URL is made."""
    settings = {"source": "amazon2018", "category": "../../../../x/Books"}
    with pytest.raises(DataError, match="category"):
        fetch_raw("amz", settings, tmp_path / "raw", mirror=str(tmp_path))
    assert not (tmp_path / "x").exists()
    with pytest.raises(DataError, match="unsafe file name"):
        fetch_raw("yelp", {"source": "yelp", "url": "http://h/a/.."}, tmp_path / "raw")
