"""The fixture really runs a redis-server: data written is read back over TCP."""


def test_real_redis_roundtrip(redis_conn, redis_server):
    redis_conn.set("pixelfleet:probe", b"ok")
    assert redis_conn.get("pixelfleet:probe") == b"ok"
    info = redis_conn.info("server")
    assert info["tcp_port"] == redis_server.port
