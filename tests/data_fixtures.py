"""Test helpers for the dataset layer: a local HTTP server with scripted failures, and tiny
raw files in each dataset's exact upstream format (encodings, separators, line endings)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Route:
    """What the server answers for one path: ``fail_first`` 500s, then ``truncate_first``
    answers cut in half (full Content-Length announced unless ``length`` is False), then the
    body (Range honoured when ``ranges`` and an If-Range matches ``etag``; no ETag header when
    ``etag`` is None). ``trickle``: seconds to wait before each byte (a server that crawls)."""

    body: bytes
    fail_first: int = 0
    truncate_first: int = 0
    ranges: bool = True
    etag: str | None = '"v1"'
    length: bool = True
    trickle: float = 0.0


@dataclass
class Server:
    base_url: str
    routes: dict[str, Route]
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    if_ranges: list[str | None] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server API)
        state: Server = self.server.state
        state.requests.append((self.path, self.headers.get("Range")))
        state.if_ranges.append(self.headers.get("If-Range"))
        route = state.routes.get(self.path.split("?")[0])
        if route is None:
            return self._empty(404)
        if route.fail_first > 0:
            route.fail_first -= 1
            return self._empty(500)
        start = 0
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and route.ranges and (if_range is None or if_range == route.etag):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(route.body):
                return self._empty(416)
            self.send_response(206)
            self.send_header(
                "Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"
            )
        else:
            self.send_response(200)
        payload = route.body[start:]
        if route.etag:
            self.send_header("ETag", route.etag)
        if route.length:
            self.send_header("Content-Length", str(len(payload)))
        else:
            self.close_connection = True
        self.end_headers()
        if route.truncate_first > 0:
            route.truncate_first -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if route.trickle:
            try:
                for byte in payload:
                    time.sleep(route.trickle)
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up
            return
        self.wfile.write(payload)

    def _empty(self, status: int):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        return


@contextmanager
def http_server(routes: dict[str, Route]) -> Iterator[Server]:
    """Serve ``routes`` (path -> Route) on 127.0.0.1 in a thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = Server(f"http://127.0.0.1:{httpd.server_address[1]}", routes)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- archives -------------------------------------------------------------------------------


def make_zip(files: dict[str, bytes], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return buf.getvalue()


def make_tar(files: dict[str, bytes], prefix: str = "", mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def json_lines(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


# --- upstream formats -----------------------------------------------------------------------


def ml100k_files() -> dict[str, bytes]:
    """u.data (tab), u.item (latin-1, ``|``, 19 genre flags), u.user (``|``)."""
    data = "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n2\t30\t1\t881250952\n"

    def flags(*on: int) -> str:
        return "|".join("1" if i in on else "0" for i in range(19))

    item = (
        f"10|Misérables, Les (1995)|01-Jan-1995||http://x|{flags(8, 14)}\n"
        f"20|Toy Story (1995)|01-Jan-1995||http://x|{flags(3, 4, 5)}\n"
        f"30|unknown|||http://x|{flags(0)}\n"
        f"40|Old Film|01-Jan-1962||http://x|{flags(11)}\n"
    )
    user = "1|24|M|technician|85711\n2|53|F|other|94043\n"
    return {
        "u.data": data.encode(),
        "u.item": item.encode("latin-1"),
        "u.user": user.encode(),
    }


def ml1m_files() -> dict[str, bytes]:
    """``::``-separated ratings.dat, movies.dat (latin-1), users.dat."""
    ratings = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    movies = (
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "5::Café au lait (1993)::Comedy\n"
    )
    users = "1::F::1::10::48067\n2::M::56::16::70072\n"
    return {
        "ratings.dat": ratings.encode(),
        "movies.dat": movies.encode("latin-1"),
        "users.dat": users.encode(),
    }


def mlcsv_files() -> dict[str, bytes]:
    """ratings.csv and movies.csv (quoted titles, ``|`` genres) as in ml-latest-small."""
    ratings = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,2.5,1\n"
    movies = (
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '3,"American President, The (1995)",Comedy|Drama|Romance\n'
        "7,Empty (2015),(no genres listed)\n"
    )
    return {"ratings.csv": ratings.encode(), "movies.csv": movies.encode()}


def lastfm_files() -> dict[str, bytes]:
    """HetRec files: CRLF user_*.dat and tags.dat (latin-1), LF UTF-8 artists.dat."""
    user_artists = "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n3\t51\t5\r\n"
    artists = (
        "id\tname\turl\tpictureURL\n"
        "51\tDuran Duran\thttp://www.last.fm/music/Duran+Duran\thttp://p/1.jpg\n"
        "52\tMorcheeba\thttp://www.last.fm/music/Morcheeba\thttp://p/2.jpg\n"
        "53\tBjörk\thttp://www.last.fm/music/Bj%C3%B6rk\t\n"
    )
    tags = "tagID\ttagValue\r\n1\tmetal\r\n2\tnew wave\r\n3\ttrip-hop\r\n4\tcafé\r\n"
    tagged = (
        "userID\tartistID\ttagID\tday\tmonth\tyear\r\n"
        "2\t51\t2\t1\t4\t2009\r\n3\t51\t2\t1\t4\t2009\r\n2\t51\t1\t1\t4\t2009\r\n"
        "2\t51\t4\t1\t4\t2009\r\n2\t52\t3\t1\t4\t2009\r\n"
    )
    return {
        "user_artists.dat": user_artists.encode(),
        "artists.dat": artists.encode("utf-8"),
        "tags.dat": tags.encode("latin-1"),
        "user_taggedartists.dat": tagged.encode(),
    }


def amazon2018_files(category: str = "Toys") -> dict[str, bytes]:
    """<Cat>_5.json.gz reviews and meta_<Cat>.json.gz, one meta line a Python dict literal."""
    reviews = [
        {"overall": 5.0, "verified": True, "reviewerID": "U1", "asin": "A1", "unixReviewTime": 100,
         "reviewText": "x", "style": {"Size:": " L"}},
        {"overall": 2.0, "reviewerID": "U1", "asin": "A2", "unixReviewTime": 200},
        {"overall": 4.0, "reviewerID": "U2", "asin": "A1", "unixReviewTime": 300, "vote": "1,234"},
    ]  # fmt: skip
    meta = (
        json.dumps({"asin": "A1", "title": "Ball", "brand": "Acme",
                    "category": ["Toys", "Sports", "Balls"], "date": "September 5, 2012"}) + "\n"
        + str({"asin": "A2", "title": "Kite", "brand": "", "category": ["Toys", "Outdoor"],
               "description": ["it's a kite"]}) + "\n"
    )  # fmt: skip
    return {
        f"{category}_5.json.gz": gzip.compress(json_lines(reviews)),
        f"meta_{category}.json.gz": gzip.compress(meta.encode()),
    }


def amazon2014_files(category: str = "Toys_and_Games") -> dict[str, bytes]:
    """reviews_<Cat>_5.json.gz and meta_<Cat>.json.gz of Python dict literals (categories a
    list of paths, salesRank a dict, price a number)."""
    reviews = [
        {"reviewerID": "U1", "asin": "T1", "reviewerName": "a", "helpful": [0, 0], "overall": 5.0,
         "unixReviewTime": 1370304000, "reviewTime": "06 4, 2013"},
        {"reviewerID": "U1", "asin": "T2", "overall": 4.0, "unixReviewTime": 1370400000},
        {"reviewerID": "U2", "asin": "T2", "overall": 3.0, "unixReviewTime": 1370500000},
    ]  # fmt: skip
    meta = [
        {"asin": "T1", "title": "Ball", "price": 3.5, "imUrl": "http://x/1.jpg",
         "salesRank": {"Toys & Games": 100}, "brand": "Acme Inc.",
         "categories": [["Toys & Games", "Sports"], ["Toys & Games", "Balls"]],
         "related": {"also_bought": ["T2"]}},
        {"asin": "T2", "title": "Kite", "price": 20.0, "salesRank": {"Toys & Games": 5000},
         "brand": "ACME", "categories": [["Toys & Games"]]},
    ]  # fmt: skip
    return {
        f"reviews_{category}_5.json.gz": gzip.compress(json_lines(reviews)),
        f"meta_{category}.json.gz": gzip.compress("".join(f"{m}\n" for m in meta).encode()),
    }


def amazon2018_product_files(category: str = "Magazines") -> dict[str, bytes]:
    """A 2018 category whose metadata has what real files have: duplicate lines (P1 with its
    price only on the second line, P2 twice alike), brand spellings of one publisher, prices as
    "$..." strings or page debris, ranks as a string or a list, an HTML-debris title, escaped
    category names and a category path that repeats its root (P6)."""
    reviews = [
        {"reviewerID": user, "asin": f"P{item}", "overall": 5.0, "unixReviewTime": 1000 + 10 * n}
        for n, (user, item) in enumerate(
            [("U1", 1), ("U1", 2), ("U1", 3), ("U2", 2), ("U2", 4), ("U2", 5), ("U3", 6),
             ("U3", 1), ("U3", 4)]
        )
    ]  # fmt: skip
    debris = ".a-box-inner{background-color:#fff}#alohaBuyBoxWidget .selected{color:gray}"
    meta = [
        {"asin": "P1", "title": "Good Food", "brand": "Meredith Corporation", "price": "",
         "rank": "12 in Magazines (", "category": ["Magazines", "Cooking, Food &amp; Wine"]},
        {"asin": "P2", "title": "Home", "brand": "MEREDITH", "price": "$20.00",
         "rank": ["#1,500 in Magazines (See Top 100)", "3 in Home"],
         "category": ["Magazines", "Home &amp; Garden"]},
        {"asin": "P1", "title": "Good Food", "brand": "Meredith Corporation", "price": "$10.00",
         "rank": "12 in Magazines (", "category": ["Magazines", "Cooking, Food &amp; Wine"]},
        {"asin": "P3", "title": '<span class="a-size-medium a-color-secondary"',
         "brand": "Meredith", "price": "$20.00", "rank": [], "category": ["Magazines", "Home"]},
        {"asin": "P4", "title": "Crafts", "brand": "F&amp;W Publications", "price": "$40.00",
         "rank": "300 in Magazines (", "category": []},
        {"asin": "P5", "title": "Quilts", "brand": "F&W Publications, Inc.", "price": "$1,250.00",
         "rank": "40 in Magazines (", "category": ["Magazines", "Crafts"]},
        {"asin": "P6", "title": "News", "brand": "Hearst", "price": debris, "rank": [],
         "category": ["Magazines", "Magazines"]},
        {"asin": "P7", "title": "Unreviewed", "brand": "Meredith", "price": "$99.00",
         "rank": "1 in Magazines (", "category": ["Magazines", "Other"]},
    ]  # fmt: skip
    meta.insert(3, meta[1])
    return {
        f"{category}_5.json.gz": gzip.compress(json_lines(reviews)),
        f"meta_{category}.json.gz": gzip.compress(json_lines(meta)),
    }


def amazon2023_files(category: str = "All_Beauty") -> dict[str, bytes]:
    """<Cat>.jsonl.gz (timestamps in ms, parent_asin) and meta_<Cat>.jsonl.gz (store)."""
    reviews = [
        {"rating": 5.0, "title": "t", "text": "x", "images": [], "asin": "B1c", "parent_asin": "B1",
         "user_id": "U1", "timestamp": 1588687728923, "helpful_vote": 0, "verified_purchase": True},
        {"rating": 3.0, "asin": "B2", "parent_asin": "B2", "user_id": "U2",
         "timestamp": 1588687729000},
    ]  # fmt: skip
    meta = [
        {"main_category": "All Beauty", "title": "Soap", "categories": ["Beauty", "Skin"],
         "store": "Suds", "price": 12.5, "parent_asin": "B1", "details": {}},
        {"main_category": "All Beauty", "title": "Comb", "categories": [], "store": None,
         "price": 30.0, "parent_asin": "B2"},
        {"main_category": "All Beauty", "title": "Brush", "categories": [], "store": "Suds",
         "price": None, "parent_asin": "B3"},
    ]  # fmt: skip
    return {
        f"{category}.jsonl.gz": gzip.compress(json_lines(reviews)),
        f"meta_{category}.jsonl.gz": gzip.compress(json_lines(meta)),
    }


def yelp_files() -> dict[str, bytes]:
    """yelp_academic_dataset_review.json and _business.json (plain JSON lines; attributes as
    the 2022 file has them: string values, "None" among them, or a null attributes object)."""
    reviews = [
        {"review_id": "r1", "user_id": "u1", "business_id": "b1", "stars": 4.0, "useful": 0,
         "text": "ok", "date": "2018-07-07 22:09:11"},
        {"review_id": "r2", "user_id": "u2", "business_id": "b2", "stars": 5.0,
         "date": "2012-01-03 15:28:18"},
    ]  # fmt: skip
    business = [
        {"business_id": "b1", "name": "Pizza Place", "city": "Tucson", "state": "AZ",
         "categories": "Pizza, Restaurants",
         "attributes": {"RestaurantsPriceRange2": "2", "WiFi": "u'no'"}},
        {"business_id": "b2", "name": "Dentist", "city": "Reno", "state": "NV",
         "categories": None, "attributes": {"RestaurantsPriceRange2": "None"}},
        {"business_id": "b3", "name": "Bar", "city": "", "state": "NV", "categories": "Bars",
         "attributes": None},
    ]  # fmt: skip
    return {
        "yelp_academic_dataset_review.json": json_lines(reviews),
        "yelp_academic_dataset_business.json": json_lines(business),
    }


def write_canonical(folder: Path, frame: pd.DataFrame) -> Path:
    """Canonical tables for a frame of dense user, item (+ optional timestamp) columns."""
    from recsae.data.prepare import prepare_raw
    from recsae.data.registry import RawData

    frame = frame.assign(rating=1.0) if "rating" not in frame else frame
    frame = frame.assign(timestamp=0) if "timestamp" not in frame else frame
    prepare_raw(RawData(interactions=frame), {"source": "test"}, folder, dataset="test")
    return folder


def random_interactions(n_users: int, n_items: int, per_user: np.ndarray, seed: int = 0):
    """``per_user[u]`` distinct random items for each user u, with distinct timestamps."""
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(n_users) for i in rng.choice(n_items, per_user[u], replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    return frame.assign(timestamp=rng.permutation(len(frame)) + 1_000)
