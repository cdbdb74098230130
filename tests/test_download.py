"""Downloads, mirrors, safe extraction and manifests against a local HTTP server (no internet)."""

from __future__ import annotations

import hashlib
import io
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
    write_files,
    yelp_files,
)

from recsae.data import lastfm, movielens
from recsae.data.download import (
    ChecksumError,
    DownloadError,
    DownloadOptions,
    NotFoundError,
    download,
)
from recsae.data.extract import UnsafeArchiveError, safe_extract
from recsae.data.fetch import RawDataChangedError, fetch_raw
from recsae.data.prepare import prepare_dataset

FAST = DownloadOptions(retries=3, backoff=0.0, connect_timeout=5, read_timeout=5)
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
