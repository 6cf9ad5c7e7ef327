"""heron.scale: sharded collections (in-process or on Ray), scatter-gather search, parallel ingest.

:class:`ShardedCollection` is N ordinary collections plus a manifest (``shards.json``) naming them
and the routing rule; see ``docs/scale.md`` for the design and the plan for 100M documents.
"""

from heron.scale.backends import ShardsUnavailable
from heron.scale.sharded import ShardedCollection

__all__ = ["ShardedCollection", "ShardsUnavailable"]
