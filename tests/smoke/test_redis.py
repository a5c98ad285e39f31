"""Redis: a Lua script loaded once and called with EVALSHA."""

from __future__ import annotations

import pytest
import redis

pytestmark = pytest.mark.integration

# Adds to a counter only the first time an id is seen: the shape of the worker's idempotent step.
APPLY_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  return redis.call('INCRBY', KEYS[2], ARGV[2])
end
return -1
"""


def test_lua_script_loaded_once_runs_by_sha(redis_url: str, unique_id: str):
    client = redis.Redis.from_url(redis_url)
    seen, total = f"{unique_id}:{{c1}}:seen", f"{unique_id}:{{c1}}:total"
    try:
        sha = client.script_load(APPLY_ONCE)
        assert client.script_exists(sha) == [True]
        assert client.evalsha(sha, 2, seen, total, "inv-1", 5) == 5
        assert client.evalsha(sha, 2, seen, total, "inv-2", 7) == 12
        assert client.evalsha(sha, 2, seen, total, "inv-1", 5) == -1  # re-delivery: no effect
        assert int(client.get(total)) == 12
    finally:
        client.delete(seen, total)
        client.close()
