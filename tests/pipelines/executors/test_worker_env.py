"""What travels to Ray and Spark workers (issue 32, docs/cluster.md "What travels"): switches,
credentials and endpoints; never a path or a profile that exists only on the driver's host."""

from __future__ import annotations

from regionset.pipelines.executors.distributed import worker_env

TRAVELS = {
    "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "/a+b/c",  # a secret may look like a path "AWS_SESSION_TOKEN": "token",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://10.0.0.1:9000",
    "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "REGIONSET_ONLINE": "0", "OMP_NUM_THREADS": "2",
    "WANDB_MODE": "disabled", "AZURE_STORAGE_ACCOUNT_NAME": "acct", "GOOGLE_CLOUD_PROJECT": "proj",
}
STAYS = {
    "AWS_PROFILE": "dev", "AWS_DEFAULT_PROFILE": "dev", "AWS_SHARED_CREDENTIALS_FILE": "/home/me/.aws/credentials",
    "AWS_CONFIG_FILE": "/home/me/.aws/config", "AWS_CA_BUNDLE": "/etc/ssl/mine.pem",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "GOOGLE_APPLICATION_CREDENTIALS": "/home/me/key.json",
    "BOTO_CONFIG": "/home/me/.boto", "TORCH_HOME": "/home/me/.cache/torch", "XDG_CACHE_HOME": "/home/me/.cache",
    "MPLCONFIGDIR": "/tmp/regionset-config-0", "YOLO_CONFIG_DIR": "/tmp/regionset-config-0",
    "HF_HOME": "/home/me/.cache/hf", "TRANSFORMERS_CACHE": "~/.cache/tf", "REGIONSET_WEIGHTS": "/opt/weights:/w2",
    "HF_TOKEN_PATH": "relative/token",
}


def test_only_switches_credentials_and_endpoints_travel(monkeypatch):
    for k, v in {**TRAVELS, **STAYS}.items():
        monkeypatch.setenv(k, v)
    got = worker_env()
    assert {k: got.get(k) for k in TRAVELS} == TRAVELS
    assert not set(STAYS) & set(got), sorted(set(STAYS) & set(got))
