"""Under the rehearsal (CURRICULUM_REHEARSAL=1), refuse every network connection that leaves this machine.

`python -m curriculum.tools.rehearsal run` puts this folder first on PYTHONPATH, so Python imports this
file at start-up in the pytest process and in every notebook kernel it starts. A connection to a
non-loopback address, or a name lookup of anything but this machine, raises `NetworkBlocked` naming
the address: an online branch that reaches past the local stand-ins fails loudly instead of
quietly working on a machine with internet. Without CURRICULUM_REHEARSAL=1 this file does nothing.
"""

import os

if os.environ.get("CURRICULUM_REHEARSAL", "").lower() in {"1", "true", "yes"}:
    import ipaddress
    import socket

    class NetworkBlocked(ConnectionRefusedError):
        """The rehearsal allows only loopback connections."""

    _LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "", None, socket.gethostname()}

    def _is_loopback(host) -> bool:
        if isinstance(host, bytes):
            host = host.decode()
        if host in _LOCAL_NAMES:
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def _check(address, family) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6):
            return  # AF_UNIX and friends never leave the machine
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            raise NetworkBlocked(f"the rehearsal (CURRICULUM_REHEARSAL=1) blocks connections to {host!r}: "
                                 f"only loopback addresses may be reached; point this resource at a local stand-in")

    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        _check(address, self.family)
        return _connect(self, address)

    def connect_ex(self, address):
        _check(address, self.family)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise NetworkBlocked(f"the rehearsal (CURRICULUM_REHEARSAL=1) blocks the name lookup of {host!r}: "
                                 f"only loopback addresses may be reached; point this resource at a local stand-in")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
