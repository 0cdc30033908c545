"""What the app reads from a request itself, beyond what Django parses."""

import ipaddress

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """REMOTE_ADDR when it is an IP address (behind a misconfigured proxy it can be a list),
    an IPv4-mapped IPv6 address as the IPv4 address it is. The one reading of the client's
    address: the audit rows and the anonymous rate limit agree on it."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
