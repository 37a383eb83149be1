"""Credentials that can read a bucket but not write it: the build stops before any work (exit 2, one
line naming the URL and the cause), nothing written.

A separate moto server enforces IAM: a user whose policy allows listing and reading the bucket but
not ``s3:PutObject``; authorization is switched on (moto's ``/moto-api/reset-auth``) after the
user, its key and the bucket exist. Two read-only policies, as users write them:
- ``s3:Get*`` + ``s3:List*`` on the bucket (the shape of AWS's managed read-only policy): runs on
  every moto release;
- exactly ``s3:ListBucket`` + ``s3:GetObject``: runs where the test server grants a listing under
  ``s3:ListBucket`` as S3 does; moto 5.2.6 denies ListObjectsV2 under it (an emulation gap, checked
  with boto3 before the build), so there it is skipped with that reason instead of failing.
The preflight's own classification is also tested without any server (tests/storage/
test_preflight_read_only.py), so the "read but not write" message never depends on one emulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import make_jpeg
from tests.helpers import write_urls
from tests.s3server import ENV, moto_process

BUCKET_ARNS = ["arn:aws:s3:::readonly", "arn:aws:s3:::readonly/*"]
POLICIES = {
    "wildcards": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": BUCKET_ARNS}]},
    "exact-actions": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": BUCKET_ARNS}]},
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_read_only_credentials_exit_2_naming_url_and_cause(server, tmp_path, policy):
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from importlib.metadata import version

    import requests

    with moto_process() as endpoint:
        admin = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": ENV["AWS_ACCESS_KEY_ID"],
                 "aws_secret_access_key": ENV["AWS_SECRET_ACCESS_KEY"]}
        boto3.client("s3", **admin).create_bucket(Bucket="readonly")
        boto3.client("s3", **admin).put_object(Bucket="readonly", Key="seen.txt", Body=b"readable")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(POLICIES[policy]))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        assert requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=30).ok  # enforce IAM from now on
        reader = {**admin, "aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        s3 = boto3.client("s3", **reader)
        assert s3.get_object(Bucket="readonly", Key="seen.txt")["Body"].read() == b"readable"  # it can read
        with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
            s3.put_object(Bucket="readonly", Key="probe", Body=b"")  # but not write
        try:
            s3.list_objects_v2(Bucket="readonly", Prefix="out/", Delimiter="/")
        except s3.exceptions.ClientError:
            if policy == "wildcards":
                raise
            pytest.skip(f"moto {version('moto')} denies ListObjectsV2 under s3:ListBucket (an emulation gap; "
                        "S3 grants it): the test server cannot express this policy")

        urls = write_urls(tmp_path, [server.add("a.jpg", make_jpeg(200, 150))])
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(yaml.safe_dump({"output": "s3://readonly/out", "input": {"path": str(urls)},
                                       "steps": ["download"], "progress": False}))
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "AWS_DEFAULT_REGION": "us-east-1"}
        run = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build", str(cfg)], env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 2, run.stderr[-2000:]
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "s3://readonly/out" in lines[0] and "can read the bucket but not write" in lines[0], lines
        assert key["SecretAccessKey"] not in run.stderr + run.stdout
        listed = s3.list_objects_v2(Bucket="readonly").get("Contents", [])
        assert [o["Key"] for o in listed] == ["seen.txt"]  # nothing written
