"""PowerFlex (ScaleIO) REST gateway emulator.

:class:`gateway.PowerFlexGateway` serves the gateway's REST API over HTTPS
for Cinder's in-tree PowerFlex driver; :mod:`state` is the system model,
:mod:`api` the REST layer, :mod:`errors` the gateway's error shapes.
"""
