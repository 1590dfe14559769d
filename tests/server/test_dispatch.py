"""The dispatch table (messenger.server.dispatch): every routed action has a schema, is
allowed only in encrypted states, and the heavy ones are marked."""

from __future__ import annotations

from twisted.trial import unittest

from messenger.server.dispatch import ROUTES, Route
from messenger.server.states import ANY_ENCRYPTED, State
from messenger.wire import jim


class DispatchTableTests(unittest.TestCase):

    def test_every_route_is_complete(self) -> None:
        """Each action routed has a wire schema, a callable handler and states that are
        all encrypted ones."""
        for action, route in ROUTES.items():
            self.assertIsInstance(route, Route)
            self.assertIn(action, jim.ACTIONS)
            self.assertTrue(callable(route.handler), action)
            self.assertTrue(route.states and route.states <= ANY_ENCRYPTED, action)

    def test_every_schema_is_routed(self) -> None:
        """No action has a schema but no handler."""
        self.assertEqual(set(jim.ACTIONS), set(ROUTES))

    def test_logins_before_login_only(self) -> None:
        """register, authenticate and resume only before login; quit in both states."""
        for action in ("register", "authenticate", "resume"):
            self.assertEqual(ROUTES[action].states, {State.UNAUTHENTICATED})
        self.assertEqual(ROUTES["quit"].states, ANY_ENCRYPTED)

    def test_heavy_routes(self) -> None:
        """Pages, searches and password work are heavy; sending a message is not."""
        for action in ("sync", "history", "get_contacts", "search_users", "authenticate",
                       "register", "get_broadcasts", "admin_list_users", "admin_audit"):
            self.assertTrue(ROUTES[action].heavy, action)
        for action in ("msg", "presence", "quit", "add_contact"):
            self.assertFalse(ROUTES[action].heavy, action)
