"""SMARTQUEUE_REDIS_URL: each deployment form parses; a malformed one stops start-up in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from smartqueue.redis_url import RedisMode, RedisTarget, parse_redis_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", RedisTarget(RedisMode.SINGLE, url="redis://127.0.0.1:6379/0")),
        ("rediss://cache:6380/2", RedisTarget(RedisMode.SINGLE, url="rediss://cache:6380/2")),
        ("unix:///run/redis.sock", RedisTarget(RedisMode.SINGLE, url="unix:///run/redis.sock")),
        ("redis+sentinel://h1:26379,h2:26380/mymaster/0",
         RedisTarget(RedisMode.SENTINEL, nodes=(("h1", 26379), ("h2", 26380)), service="mymaster")),
        ("redis+sentinel://h1,[::1]:5/svc/3",
         RedisTarget(RedisMode.SENTINEL, nodes=(("h1", 26379), ("::1", 5)), service="svc", db=3)),
        ("redis+sentinel://h1/mymaster",
         RedisTarget(RedisMode.SENTINEL, nodes=(("h1", 26379),), service="mymaster")),
        ("redis+cluster://h1:7000,h2:7001/",
         RedisTarget(RedisMode.CLUSTER, nodes=(("h1", 7000), ("h2", 7001)))),
        ("redis+cluster://h1", RedisTarget(RedisMode.CLUSTER, nodes=(("h1", 6379),))),
    ],
)  # fmt: skip
def test_redis_url_each_form_parses(url: str, expected: RedisTarget) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:6379", "must look like"),
        ("http://h:6379/0", "unknown scheme 'http'"),
        ("redis://:6379/0", "needs a host"),
        ("redis://h:99999/0", "port must be a number"),
        ("redis+sentinel://h1:26379,h2:26379/", "needs the service name"),
        ("redis+sentinel://h1:26379/mymaster/zero", "database must be a number"),
        ("redis+sentinel://h1:x/mymaster", "port 'x' of h1"),
        ("redis+sentinel://h1,,h2/mymaster", "empty host"),
        ("redis+sentinel://:secret@h1/mymaster", "no credentials"),
        ("redis+cluster://h1:7000/3", "only database 0"),
    ],
)
def test_redis_url_malformed_raises_one_line_naming_the_problem(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as raised:
        parse_redis_url(url)

    assert "\n" not in str(raised.value)


def test_serve_with_malformed_redis_url_exits_with_one_line_without_the_secret() -> None:
    env = {**os.environ, "SMARTQUEUE_REDIS_URL": "redis+sentinel://:hunter2@h1/mymaster"}
    done = subprocess.run([sys.executable, "-m", "smartqueue", "serve"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("smartqueue: settings: SMARTQUEUE_REDIS_URL: ")
    assert "hunter2" not in done.stderr
