"""Model routing: a public model name served by one or more upstream deployments.

* :mod:`.config`      - the routing file (TOML, ``ROUTING_FILE``), checked at start-up
* :mod:`.deployment`  - one deployment: its upstream, what it serves, its cool-down
* :mod:`.order`       - which deployments a request tries, in which order (by weight)
* :mod:`.primed`      - a reply whose first byte (or whole body) has already arrived
* :mod:`.router`      - :class:`~.router.Router`, an :class:`~..relay.upstream.Upstream`
  that picks, falls over and translates, so the proxy keeps one code path
* :mod:`.build`       - the router of a gateway's settings: a routing file,
  ``OPENAI_BASE_URL`` (one deployment for every model) or the offline responder
"""
