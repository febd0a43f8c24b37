"""The loopback proxy in front of a real OpenBao (see loopback_proxy.py): a foreign
writer landing between bsecrets' read and its write, a burst of 503 answers, a
request held while the client's time budget runs out.

    with VaultProxy(openbao.address) as proxy:
        proxy.address                      # point the profile here
        proxy.after = hook                 # hook(method, path) after the server answered
        proxy.fail_next(503, 503)          # answer the next two requests with 503
        proxy.stall(method="PATCH")        # hold the next PATCH until proxy.release()
        proxy.requests                     # [(method, path), ...] as forwarded or failed
"""

from __future__ import annotations

from loopback_proxy import LoopbackProxy as VaultProxy

__all__ = ["VaultProxy"]
