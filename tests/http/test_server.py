"""The status server over real sockets: endpoints, errors and hostile clients."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from dataclasses import replace
from http import HTTPStatus

from battery_hawk.http import HealthSnapshot, HttpServer, Metrics
from battery_hawk.http.routes import Request, Response, RouteTable, is_admin, json_response
from battery_hawk.http.server import MAX_BODY_BYTES
from tests.http.conftest import CAR, CAR_READING, FakeProvider, get, raw_request
from tests.support.brokers import wait_until


async def test_health_is_ok_with_200_when_everything_is_up(server: HttpServer) -> None:
    reply = await get(server.port, "/health")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert json.loads(reply.body) == {
        "status": "ok",
        "failing": [],
        "checks": {
            "loops": {"ok": True, "dead": []},
            "mqtt": {"ok": True, "state": "connected", "down_s": None, "grace_s": 120.0},
            "devices": {"ok": True, "stale": 0, "total": 2},
        },
        "mqtt": {"state": "connected", "queue_size": 0},
        "devices": {"online": 2, "offline": 0, "total": 2},
        "uptime_s": 3725.5,
        "loops": {"scanner": True},
        "version": None,
    }


async def test_health_is_degraded_but_200_when_mqtt_is_down_or_a_device_offline(
    server: HttpServer, provider: FakeProvider
) -> None:
    provider.snapshot = replace(provider.snapshot, mqtt_state="reconnecting")
    provider.statuses[1] = replace(provider.statuses[1], online=False)
    reply = await get(server.port, "/health")
    doc = json.loads(reply.body)
    assert (reply.status, doc["status"]) == (200, "degraded")
    assert doc["devices"] == {"online": 1, "offline": 1, "total": 2}


async def test_health_fails_when_mqtt_is_down_past_the_grace_period(
    server: HttpServer, provider: FakeProvider
) -> None:
    provider.snapshot = replace(provider.snapshot, mqtt_state="reconnecting", mqtt_down_s=60.0)
    assert json.loads((await get(server.port, "/health")).body)["status"] == "degraded"
    provider.snapshot = replace(provider.snapshot, mqtt_state="failed", mqtt_down_s=121.0)
    reply = await get(server.port, "/health")
    doc = json.loads(reply.body)
    assert (reply.status, doc["status"], doc["failing"]) == (503, "failing", ["mqtt"])
    assert doc["checks"]["mqtt"]["down_s"] == 121.0


async def test_health_fails_when_no_device_read_within_its_offline_period(
    server: HttpServer, provider: FakeProvider
) -> None:
    provider.statuses[0] = replace(provider.statuses[0], online=False, stale=True)
    reply = await get(server.port, "/health")
    assert (reply.status, json.loads(reply.body)["status"]) == (200, "degraded")
    provider.statuses[1] = replace(provider.statuses[1], online=False, stale=True)
    reply = await get(server.port, "/health")
    doc = json.loads(reply.body)
    assert (reply.status, doc["failing"]) == (503, ["devices"])
    assert doc["checks"]["devices"] == {"ok": False, "stale": 2, "total": 2}


async def test_health_is_failing_with_503_when_a_watchdog_loop_is_dead(
    server: HttpServer, provider: FakeProvider
) -> None:
    provider.snapshot = HealthSnapshot("connected", 10.0, loops={"scanner": True, "mqtt": False})
    reply = await get(server.port, "/health")
    doc = json.loads(reply.body)
    assert (reply.status, doc["status"], doc["failing"]) == (503, "failing", ["loops"])
    assert doc["checks"]["loops"] == {"ok": False, "dead": ["mqtt"]}


async def test_devices_api_lists_latest_reading_availability_and_errors(
    server: HttpServer,
) -> None:
    reply = await get(server.port, "/api/devices")
    assert reply.status == 200
    car, van = json.loads(reply.body)
    assert car["device_id"] == "aabbccddee01" and car["availability"] == "online"
    assert car["last_seen"] == "2026-11-22T19:00:00.123Z"
    assert car["latest"]["voltage"] == 12.84 and car["latest"]["current"] is None
    assert car["latest"]["state"] == "normal" and car["latest"]["seq"] == 7
    assert van["latest"] is None
    assert van["errors"] == {"decode": 2, "transport": 0, "last": "bad frame"}


async def test_metrics_expose_device_gauges_counters_and_process_figures(
    server: HttpServer, metrics: Metrics
) -> None:
    metrics.observe_reading(CAR_READING)
    metrics.set_online(CAR, True)
    metrics.observe_decode_error(CAR)
    reply = await get(server.port, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    text = reply.body.decode()
    labels = 'device_id="aabbccddee01"'
    assert f"battery_hawk_voltage_volts{{{labels}}} 12.84" in text
    assert f"battery_hawk_readings_total{{{labels}}} 1.0" in text
    assert f"battery_hawk_decode_errors_total{{{labels}}} 1.0" in text
    assert f"battery_hawk_transport_errors_total{{{labels}}} 0.0" in text
    assert f"battery_hawk_device_online{{{labels}}} 1.0" in text
    assert f"battery_hawk_rssi_dbm{{{labels}}} -67.0" in text
    assert f"battery_hawk_seq{{{labels}}} 7.0" in text
    assert "battery_hawk_current_amperes{" not in text  # not reported: no series
    assert "process_resident_memory_bytes" in text


async def test_metrics_turn_mqtt_stats_into_state_set_gauges_and_counters(
    server: HttpServer, metrics: Metrics
) -> None:
    stats = {"connection_state": "connected", "queue_size": 3, "messages_published": 41,
             "messages_dropped": 1, "last_error": "x"}  # fmt: skip
    metrics.bind_mqtt(lambda: stats)
    text = (await get(server.port, "/metrics")).body.decode()
    assert 'battery_hawk_mqtt_connection_state{state="connected"} 1.0' in text
    assert 'battery_hawk_mqtt_connection_state{state="disconnected"} 0.0' in text
    assert "battery_hawk_mqtt_connected 1.0" in text
    assert "battery_hawk_mqtt_queue_size 3.0" in text
    assert "battery_hawk_mqtt_messages_published_total 41.0" in text
    assert "battery_hawk_mqtt_messages_dropped_total 1.0" in text
    assert "last_error" not in text


async def test_removed_device_disappears_from_metrics(server: HttpServer, metrics: Metrics) -> None:
    metrics.observe_reading(CAR_READING)
    metrics.remove_device(CAR.device_id)
    assert b"aabbccddee01" not in (await get(server.port, "/metrics")).body


async def test_status_page_is_self_contained_refreshing_and_escaped(server: HttpServer) -> None:
    reply = await get(server.port, "/")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    page = reply.body.decode()
    assert '<meta http-equiv="refresh"' in page
    assert "Car battery" in page and "12.84" in page
    assert "Van &lt;aux&gt;" in page and "<aux>" not in page
    assert "<script" not in page and "src=" not in page and "stylesheet" not in page


async def test_unknown_path_is_404(server: HttpServer) -> None:
    assert (await get(server.port, "/nope")).status == 404


async def test_post_to_a_known_path_is_405_with_allow(server: HttpServer) -> None:
    reply = await get(server.port, "/metrics", method="POST")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"


async def test_head_sends_the_headers_without_a_body(server: HttpServer) -> None:
    reply = await get(server.port, "/health", method="HEAD")
    assert reply.status == 200 and reply.body == b""
    assert int(reply.headers["content-length"]) > 0


async def test_query_string_and_trailing_slash_are_ignored(server: HttpServer) -> None:
    assert (await get(server.port, "/health?verbose=1")).status == 200
    assert (await get(server.port, "/api/devices/")).status == 200


async def test_garbage_requests_get_400_and_the_server_keeps_serving(server: HttpServer) -> None:
    for junk in (b"hello\r\n\r\n", b"\xff\xfe\x00\x01\r\n\r\n", b"GET /health SPDY/3\r\n\r\n",
                 b"GET  HTTP/1.1\r\n\r\n", b"get / HTTP/1.1\r\n\r\n"):  # fmt: skip
        assert (await raw_request(server.port, junk)).status == 400, junk
    assert (await get(server.port, "/health")).status == 200


async def test_http2_preface_is_refused_as_unsupported_version(server: HttpServer) -> None:
    reply = await raw_request(server.port, b"GET / HTTP/2.0\r\n\r\n")
    assert reply.status == 505


async def test_oversized_request_head_is_refused(server: HttpServer) -> None:
    huge = b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await raw_request(server.port, huge)).status == 431
    many = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n"
    assert (await raw_request(server.port, many)).status == 431


async def test_a_client_that_never_finishes_its_request_times_out(server: HttpServer) -> None:
    reply = await raw_request(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n")
    assert reply.status == 408


async def test_clients_that_never_read_their_answer_do_not_hold_the_server(
    metrics: Metrics, provider: FakeProvider
) -> None:
    """More such clients than connection slots: each is dropped after the timeout, so a
    scraper that comes later is served (a graceful close used to wait for them forever)."""
    big = (HTTPStatus.OK, "text/plain", b"x" * 8_000_000)  # more than the socket buffers
    loop = asyncio.get_running_loop()
    async with HttpServer("127.0.0.1", 0, metrics, provider, request_timeout=0.5,
                          max_connections=2) as srv:
        srv.add_route("GET", "/big", lambda _request: big)
        sockets = []
        try:
            for _ in range(3):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", srv.port))
                await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                sockets.append(sock)  # and never read
            await wait_until(lambda: not srv._handlers, timeout=30)
            assert (await get(srv.port, "/health")).status == 200
        finally:
            for sock in sockets:
                sock.close()


async def test_a_client_that_hangs_up_early_does_not_hurt(server: HttpServer) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /he")
    writer.close()
    await writer.wait_closed()
    assert (await get(server.port, "/health")).status == 200


async def test_a_failing_provider_gives_500_and_the_server_recovers(
    server: HttpServer, provider: FakeProvider
) -> None:
    provider.broken = True
    assert (await get(server.port, "/api/devices")).status == 500
    provider.broken = False
    assert (await get(server.port, "/api/devices")).status == 200


async def test_a_stock_http_client_can_read_the_health(server: HttpServer) -> None:
    def fetch() -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{server.port}/health"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()

    status, body = await asyncio.to_thread(fetch)
    assert status == 200 and json.loads(body)["status"] == "ok"


async def test_stopping_closes_idle_connections_promptly(
    metrics: Metrics, provider: FakeProvider
) -> None:
    srv = HttpServer("127.0.0.1", 0, metrics, provider, request_timeout=60)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET / HTTP/1.1\r\n")
    await writer.drain()
    async with asyncio.timeout(5):
        await srv.stop()
        try:
            leftover = await reader.read()
        except ConnectionResetError:  # closed before the kernel handed over the bytes
            leftover = b""
    assert leftover == b""
    writer.close()


async def test_an_added_route_gets_path_params_and_the_body(server: HttpServer) -> None:
    seen: list[Request] = []

    async def echo(request: Request) -> Response:
        seen.append(request)
        return json_response({"id": request.params["device_id"], "body": request.body.decode()})

    server.add_route("POST", "/api/devices/{device_id}/echo", echo)
    reply = await raw_request(server.port, b"POST /api/devices/car/echo?x=1 HTTP/1.1\r\n"
                              b"Host: a\r\nContent-Length: 5\r\n\r\nhello")
    assert (reply.status, json.loads(reply.body)) == (200, {"id": "car", "body": "hello"})
    assert seen[0].query == "x=1" and seen[0].client == "127.0.0.1"
    assert (await get(server.port, "/api/devices/car/echo")).headers["allow"] == "POST"
    assert (await get(server.port, "/api/devices//echo", method="POST")).status == 404


async def test_a_body_over_the_limit_is_refused_with_413(server: HttpServer) -> None:
    server.add_route("POST", "/sink", lambda _: json_response({}))
    big = b"x" * (MAX_BODY_BYTES + 1)
    request = b"POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(big)
    assert (await raw_request(server.port, request + big)).status == 413
    chunked = (b"POST /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")
    assert (await raw_request(server.port, chunked)).status == 413


async def test_admin_routes_answer_loopback_clients(server: HttpServer) -> None:
    server.add_route("POST", "/admin", lambda _: json_response({"ok": True}), admin=True)
    assert (await get(server.port, "/admin", method="POST")).status == 200


def test_admin_from_another_host_needs_the_bearer_token() -> None:
    lan = Request("POST", "/admin", client="192.168.1.20")
    assert not is_admin(lan, None) and not is_admin(lan, "s3cret")
    with_token = replace(lan, headers={"authorization": "Bearer s3cret"})
    assert is_admin(with_token, "s3cret") and not is_admin(with_token, "other")
    assert is_admin(Request("POST", "/admin", client="::1"), None)


def test_route_table_matches_whole_segments_in_order() -> None:
    table = RouteTable()
    table.add("GET", "/api/devices", lambda _: json_response([]))
    table.add("POST", "/api/devices/{device_id}/reset-breaker", lambda _: json_response({}))
    table.add("GET", "/api/dead-letters", lambda _: json_response([]))
    table.add("POST", "/api/dead-letters/replay", lambda _: json_response({}))
    found = table.find("/api/devices/van/reset-breaker/")
    assert found is not None and found[1] == {"device_id": "van"}
    assert table.find("/api/devices/van") is None
    replay = table.find("/api/dead-letters/replay")
    assert replay is not None and replay[0].allow == "POST"
    listing = table.find("/api/dead-letters")
    assert listing is not None and listing[0].allow == "GET, HEAD"
