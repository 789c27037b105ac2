"""Redis: the store that replicas share, with their job board and session relay (`SERVICE_STORE=redis`).

One concept a module:

    keys.py      the key names and their hash tags (the layout, key by key)
    scripts.py   the Lua scripts: what must be checked and changed in one step
    wire.py      how a batch of commands reaches Redis and its replies come back
    writer.py    the client, the queue of writes (`service.stores.write_behind`) and its commands
    storage.py   `RedisStorage`: the event log and the job records, and the store as it is opened
    board.py     `RedisBoard`: admission against shares, leases, takeovers, cancels
    relay.py     `RedisRelay`: which replica holds each session, and each replica's inbox

Importing it loads redis-py and hiredis: `service.stores.create_stores` does so only when
the Redis store is configured.

Replication in Redis is asynchronous: a write acknowledged by a master can be lost if that
master fails before a replica has it. Run Redis with persistence and replicas for durability;
`WAIT` narrows the window, it does not close it.
"""

from service.stores.redis.storage import RedisStorage

__all__ = ["RedisStorage"]
