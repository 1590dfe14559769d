"""Unit tests of messenger.server.netkeys: which addresses are one host, one network."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.server.netkeys import host_key, keys_of, network_key


class NetKeysTests(unittest.TestCase):

    def test_ipv4_host_and_24(self) -> None:
        """An IPv4 address is its own host; its /24 is its network."""
        self.assertEqual(keys_of("192.0.2.77"), ("192.0.2.77", "192.0.2.0/24"))
        self.assertEqual(network_key("192.0.2.1"), network_key("192.0.2.254"))
        self.assertNotEqual(network_key("192.0.2.1"), network_key("192.0.3.1"))

    def test_ipv6_host_is_64_network_is_48(self) -> None:
        """Over IPv6 a host picks any address of its /64: the /64 is the host key and the
        /48 the network key."""
        self.assertEqual(keys_of("2001:db8:1:2:3:4:5:6"),
                         ("2001:db8:1:2::/64", "2001:db8:1::/48"))
        self.assertEqual(host_key("2001:db8:1:2::1"), host_key("2001:db8:1:2:ffff::9"))
        self.assertNotEqual(host_key("2001:db8:1:2::1"), host_key("2001:db8:1:3::1"))

    def test_ipv4_mapped_ipv6_is_ipv4(self) -> None:
        """An IPv4-mapped IPv6 address (a dual-stack listener) counts as the IPv4 one."""
        self.assertEqual(keys_of("::ffff:192.0.2.5"), ("192.0.2.5", "192.0.2.0/24"))

    def test_anything_else_is_its_own_host_and_network(self) -> None:
        """A UNIX socket path or a test transport's name is its own host and network."""
        self.assertEqual(keys_of("?"), ("?", "?"))
        self.assertEqual(keys_of("/run/messenger.sock"),
                         ("/run/messenger.sock", "/run/messenger.sock"))
