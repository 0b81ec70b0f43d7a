"""Where presigned media URLs point: on AWS the bucket's regional virtual-hosted
name (the global name answers a new bucket outside us-east-1 with 307
redirects, which browser form POSTs and streamed uploads do not follow); at an
endpoint override (moto's server, the local stack) the endpoint, path style."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from moto import mock_aws

from parley_server.store.aws import s3_client
from parley_server.store.media import MediaStore
from parley_server.store.schema import create_table_kwargs, table
from tests.conftest import AWS_ENV

BUCKET = "parley-url-media"
USERS = "parley-url-users"
KEY = "m/" + "a" * 32 + "/" + "b" * 32


def _use_region(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)


def _store(region: str) -> MediaStore:
    import boto3

    s3 = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=BUCKET)
    else:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    ddb = boto3.client("dynamodb", region_name=region)
    ddb.create_table(**create_table_kwargs(table("Users"), USERS))
    return MediaStore(s3_client(), ddb, bucket=BUCKET, table=USERS)


@pytest.fixture(params=["eu-west-2", "us-east-1"])
def regional(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, MediaStore]]:
    region: str = request.param
    _use_region(monkeypatch, region)
    with mock_aws():
        yield region, _store(region)


def test_upload_form_posts_to_the_regional_virtual_hosted_name(
    regional: tuple[str, MediaStore],
) -> None:
    region, store = regional
    post = store.presign_upload(KEY, size=10, expires_in=60)
    assert post.url == f"https://{BUCKET}.s3.{region}.amazonaws.com/"
    # the key travels in the form, not the URL; the signature names the region
    assert post.fields["key"] == KEY
    assert f"/{region}/s3/aws4_request" in post.fields["x-amz-credential"]


def test_download_link_names_the_regional_virtual_hosted_name(
    regional: tuple[str, MediaStore],
) -> None:
    region, store = regional
    url = urlsplit(store.presign_download(KEY, expires_in=60))
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        f"{BUCKET}.s3.{region}.amazonaws.com",
        f"/{KEY}",
    )
    assert f"{region}%2Fs3%2Faws4_request" in url.query


def test_regional_links_upload_and_download(regional: tuple[str, MediaStore]) -> None:
    _, store = regional
    blob = bytes(range(256)) * 4
    post = store.presign_upload(KEY, size=len(blob), expires_in=60)
    posted = requests.post(post.url, data=post.fields, files={"file": ("b", blob)}, timeout=10)
    assert posted.status_code == 204
    assert store.object_size(KEY) == len(blob)
    got = requests.get(store.presign_download(KEY, expires_in=60), timeout=10)
    assert got.status_code == 200
    assert got.content == blob


@pytest.mark.parametrize("endpoint", ["http://localhost:4566", "http://127.0.0.1:4566"])
def test_at_an_endpoint_override_links_use_the_endpoint_path_style(
    monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    # <bucket>.localhost would not resolve: the bucket goes in the path
    _use_region(monkeypatch, "eu-west-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = MediaStore(s3_client(), None, bucket=BUCKET, table=USERS)
    assert store.presign_upload(KEY, size=1, expires_in=60).url == f"{endpoint}/{BUCKET}"
    url = store.presign_download(KEY, expires_in=60)
    assert url.startswith(f"{endpoint}/{BUCKET}/{KEY}?")


def test_each_region_gets_its_own_client(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_region(monkeypatch, "eu-west-2")
    london = s3_client()
    _use_region(monkeypatch, "us-east-1")
    virginia = s3_client()
    assert london is not virginia
    assert (london.meta.region_name, virginia.meta.region_name) == ("eu-west-2", "us-east-1")
