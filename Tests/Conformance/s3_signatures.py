"""Signs S3 requests with botocore, as boto3's own client builds them, for the Swift signer to compare against.

Each request is captured just before it would be sent (nothing is sent), at a fixed time, and printed as JSON:
method, url, the headers botocore signed, and its Authorization header.
"""
import base64
import datetime
import json
import sys
from unittest import mock

import boto3
import botocore.auth
from botocore.config import Config

FIXED = datetime.datetime(2026, 12, 3, 20, 15, 30, tzinfo=datetime.timezone.utc)
captured = []


def capture(request, **_):
    authorization = request.headers["Authorization"].decode() if isinstance(request.headers["Authorization"], bytes) \
        else request.headers["Authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {}
    for name, value in request.headers.items():
        if name.lower() in signed and name.lower() != "host":
            headers[name.lower()] = value.decode() if isinstance(value, bytes) else value
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    captured.append({"method": request.method, "url": request.url, "headers": headers, "authorization": authorization,
                     "body": base64.b64encode(body).decode()})
    # Answer without the network: botocore takes this as the response.
    raise StopSending()


class StopSending(Exception):
    pass


def client(token=None, region="us-east-1", endpoint="http://127.0.0.1:9000"):
    c = boto3.client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", aws_session_token=token,
        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                      response_checksum_validation="when_required", retries={"max_attempts": 1}))
    c.meta.events.register("before-send", capture)
    return c


def call(name, c, operation, **arguments):
    before = len(captured)
    try:
        getattr(c, operation)(**arguments)
    except StopSending:
        pass
    except Exception as error:  # botocore wraps what a handler raises in some versions
        if len(captured) == before:
            raise error
    captured[-1]["name"] = name
    captured[-1]["key"] = arguments.get("Key")
    captured[-1]["token"] = c._request_signer._credentials.token
    captured[-1]["region"] = c.meta.region_name


with mock.patch.object(botocore.auth, "get_current_datetime", lambda: FIXED.replace(tzinfo=None)):
    plain = client()
    call("get", plain, "get_object", Bucket="models", Key="artifacts/abc/model.json")
    call("put", plain, "put_object", Bucket="models", Key="data/ünïcødé file.csv", Body=b"a,b\n1,2\n")
    call("put-empty", plain, "put_object", Bucket="models", Key="empty", Body=b"")
    call("put-if-none-match", plain, "put_object", Bucket="models", Key="a/build.json", Body=b"{}", IfNoneMatch="*")
    call("head-reserved", plain, "head_object", Bucket="models", Key="a+b=c&d~e(f)!*'")
    call("list-query", plain, "list_objects_v2", Bucket="models", Prefix="models/é x", ContinuationToken="1/abc+def==")
    call("list-plain", plain, "list_objects_v2", Bucket="models", Prefix="")
    call("delete-objects", plain, "delete_objects", Bucket="models",
         Delete={"Objects": [{"Key": "a/model.json"}, {"Key": "b/ü.json"}], "Quiet": True})
    call("multipart-create", plain, "create_multipart_upload", Bucket="models", Key="big/train.csv")
    call("multipart-part", plain, "upload_part", Bucket="models", Key="big/train.csv", PartNumber=3,
         UploadId="2~xyz/abc+=", Body=b"x" * 1024)
    call("multipart-complete", plain, "complete_multipart_upload", Bucket="models", Key="big/train.csv",
         UploadId="2~xyz/abc+=", MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"e1"'}]})
    call("multipart-abort", plain, "abort_multipart_upload", Bucket="models", Key="big/train.csv", UploadId="2~xyz")
    call("session-token", client(token="FQoGZXIvYXdzE//token+with/slashes=="), "get_object", Bucket="models", Key="k")
    call("other-region", client(region="eu-west-3", endpoint="http://127.0.0.1:9444"), "get_object", Bucket="models",
         Key="日本/データ.csv")

json.dump(captured, sys.stdout, ensure_ascii=False, indent=1)
