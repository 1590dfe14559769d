"""Who is "one client" and "one network" for the limits: keys derived from an address.

Over IPv4 one address is one host, and a /24 is one network (one attacker often holds a
few neighbouring addresses). Over IPv6 one host is handed a whole /64 (it can pick any of
2^64 addresses), so a limit per address would be no limit at all: the host key is the /64
and the network key the /48. Anything that is not an IP address (a UNIX socket, a test
transport) is its own host and network.
"""

from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=65536)
def keys_of(address: str) -> tuple[str, str]:
    """(host key, network key) of a peer address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address, address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return str(ip), str(ipaddress.ip_network(f"{ip}/24", strict=False))
    return (str(ipaddress.ip_network(f"{ip}/64", strict=False)),
            str(ipaddress.ip_network(f"{ip}/48", strict=False)))


def host_key(address: str) -> str:
    return keys_of(address)[0]


def network_key(address: str) -> str:
    return keys_of(address)[1]
