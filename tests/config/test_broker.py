"""The broker transport (config/broker.py): one redis-py client per channel for the
synchronous commands, and messages still sent, received and acknowledged through it."""

import uuid

from kombu import Connection

from config.broker import Channel, Transport
from config.celery import app

# A Redis database of this test's own (the benchmarks' range, no worker listens there).
BROKER_URL = "redis://127.0.0.1:6379/15"


def test_a_redis_broker_uses_the_transport_with_one_client_per_channel() -> None:
    with app.connection_for_write() as connection:
        assert connection.transport_cls == "config.broker:Transport"
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        client = channel._create_client()
        assert channel._create_client() is client
        assert channel._create_client(asynchronous=True) is not client  # kombu's own
        channel._pool = None  # type: ignore[attr-defined]  # a new pool: a client of its own
        assert channel._create_client() is not client


def test_a_message_goes_through_and_is_acknowledged_once() -> None:
    name = f"moneta-test-broker-{uuid.uuid4().hex}"
    with Connection(BROKER_URL, transport=Transport) as connection:
        queue = connection.SimpleQueue(name)
        channel = queue.channel
        assert isinstance(channel, Channel)
        try:
            for number in range(3):
                queue.put({"n": number})
            received = [queue.get(timeout=2) for _ in range(3)]
            assert channel.client.hlen(channel.unacked_key) == 3  # taken, not yet acknowledged
            for message in received:
                message.ack()
            assert [message.payload["n"] for message in received] == [0, 1, 2]
            assert channel.client.llen(name) == 0
            assert channel.client.hlen(channel.unacked_key) == 0
        finally:
            queue.close()
            bindings = [f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}"]
            channel.client.delete(name, *bindings)
